"""Experiment configs (TOML) -> validated Experiment. Every problem is one line naming file and field."""
from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from kernels_mlir.gemm import DEFAULT_MC, DEFAULT_NC, DEFAULT_TRAVERSAL, GemmSpec
from kernels_mlir.spec import DTYPES, KernelSpec, SpecError
from pipelines.compile import strategy_lanes
from pipelines.llvm_catalog import known_cpus, known_features
from pipelines.targets import Target, UnknownTarget, get_target, host_target, missing_features
from transforms.errors import StrategyError
from transforms.instructions import INSTRUCTIONS
from transforms.knobs import GEMM_KNOBS
from transforms.llvm_options import LLVMOptions
from transforms.steps import load_plugins, step_from_config
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from runner.measure.environment import available_memory
from runner.measure.timing import (MAX_SAMPLES, MIN_SAMPLE_SECONDS, SAMPLES, TimingPolicy, check_count,
                                   check_sample_seconds)
from runner.search.space import SearchSpace, SweepSettings, knobs


class ConfigError(ValueError):
    """Bad input; str() is the one line the CLI prints before exiting with status 2."""


SECTIONS = {"experiment", "timing", "defaults", "strategy", "space", "sweep", "gemm", "crossover"}
EXPERIMENT_KEYS = {"name", "description", "target", "kind"}
KINDS = ("microkernel", "gemm", "crossover")
GEMM_KEYS = {"shapes", "mc", "nc", "traversal", "accumulate", "threads", "split", "pack_bytes", "inner"}
CROSSOVER_KEYS = {"m", "n", "k", "routes", "mc", "nc", "traversal"}
ROUTE_KEYS = {"name", "strategy", "numpy", "mc", "nc", "traversal"}
TIMING_KEYS = {"min_sample_seconds", "samples"}
STRATEGY_KEYS = {"name", "mr", "nr", "kc", "dtype", "k_group", "steps", "llvm", "vector_bits", "target"}
SWEEP_KEYS = {"method", "budget", "time_seconds", "seed", "jobs", "timeout_seconds", "screen_min_sample_seconds",
              "screen_samples", "leaders", "fit_registers"}
#: A strategy must say at least these (directly or through [defaults]).
REQUIRED = ("mr", "nr", "kc")


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    kind: str
    target: str
    timing: TimingPolicy
    strategies: tuple[Strategy, ...]
    #: For `ukl sweep`: the [space] to search (besides the listed strategies) and the [sweep] settings.
    space: SearchSpace | None = None
    sweep: SweepSettings = SweepSettings()
    #: For kind "gemm": the problem shapes and the blocking around each strategy's micro-kernel.
    gemm: GemmSettings | None = None
    #: For kind "crossover": the shape grid and the routes compared on it.
    crossover: CrossoverSettings | None = None
    #: Strategies tied to one ISA name their own target (strategy name -> target name).
    strategy_targets: tuple[tuple[str, str], ...] = ()

    def target_of(self, strategy: Strategy) -> str:
        """The target a strategy is compiled for: its own when it names one, else the experiment's."""
        return dict(self.strategy_targets).get(strategy.name, self.target)


@dataclass(frozen=True)
class Route:
    """One way to compute C = A.B: our GEMM around a strategy's micro-kernel, or numpy.matmul."""

    name: str
    strategy: Strategy | None  # None: numpy.matmul (OpenBLAS, one thread)
    mc: int = DEFAULT_MC
    nc: int = DEFAULT_NC
    traversal: str = DEFAULT_TRAVERSAL

    def spec(self, shape: tuple[int, int, int]) -> GemmSpec:
        return gemm_spec(self.strategy, shape, self.mc, self.nc, self.traversal)


@dataclass(frozen=True)
class CrossoverSettings:
    shapes: tuple[tuple[int, int, int], ...]
    #: Route A is compared with route B; further routes are measured too (which is best per shape).
    routes: tuple[Route, ...]
    dtype: str


def gemm_spec(strategy: Strategy, shape: tuple[int, int, int], mc: int, nc: int, traversal: str,
              accumulate: bool = False, threads: int = 1, split: str = "jc",
              pack_bytes: int | str = "unbounded", inner: str = "ir") -> GemmSpec:
    """The GEMM around `strategy`'s micro-kernel (whose kc is the k-blocking)."""
    k = strategy.kernel
    return GemmSpec(*shape, dtype=k.dtype, mr=k.mr, nr=k.nr, kc=k.kc, mc=mc, nc=nc, traversal=traversal,
                    accumulate=accumulate, k_group=k.k_group, threads=threads, split=split,
                    pack_bytes=None if pack_bytes == "unbounded" else pack_bytes,  # GemmSpec rejects other words
                    inner=inner)


@dataclass(frozen=True)
class GemmSettings:
    shapes: tuple[tuple[int, int, int], ...]
    mc: int = DEFAULT_MC
    nc: int = DEFAULT_NC
    traversal: str = DEFAULT_TRAVERSAL
    accumulate: bool = False
    threads: int = 1
    split: str = "jc"
    #: Bytes, or "unbounded".
    pack_bytes: int | str = "unbounded"
    inner: str = "ir"

    def spec(self, strategy: Strategy, shape: tuple[int, int, int]) -> GemmSpec:
        return gemm_spec(strategy, shape, self.mc, self.nc, self.traversal, self.accumulate, self.threads,
                         self.split, self.pack_bytes, self.inner)


#: A config is a few kilobytes; anything this large is not one (and /dev/zero never ends).
MAX_CONFIG_BYTES = 1 << 20


def read_config(path: Path) -> dict[str, Any]:
    """The TOML of a config file: a regular file, bounded in size, UTF-8; every problem one line."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: not a regular file (a config is a TOML file)")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {info.st_size} bytes; a config is at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = path.read_bytes()[:MAX_CONFIG_BYTES + 1].decode("utf-8")
        return tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed TOML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ConfigError(f"{path}: malformed TOML: {' '.join(str(exc).split())[:200]}") from None


def load(path: str | Path) -> Experiment:
    path = Path(path)
    raw = read_config(path)
    try:
        load_plugins()
        experiment = _parse(path, raw)
    except (StrategyError, SpecError, UnknownTarget) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for strategy in experiment.strategies:
        check_for_target((strategy,), get_target(experiment.target_of(strategy)), f"{path}: ")
    return experiment


def runnable_target(name: str) -> Target:
    """The named target, which must run on this host (to be timed, not only compiled)."""
    target = get_target(name)
    if not target.runs_here:
        raise ConfigError(f"target {name!r} does not run on this host ({not_here(target)}): "
                          "it can be compiled and analysed, not timed")
    return target


def not_here(target: Target) -> str:
    """Why `target`'s code cannot run on this host, in a few words."""
    return f"{host_target().label} lacks {', '.join(missing_features(target, host_target()))}"


def check_llvm_names(strategy: Strategy, target: Target) -> None:
    """llvm.cpu and llvm.features must be names LLVM knows for the target (it ignores others with a warning)."""
    cpu, features = strategy.llvm.cpu, strategy.llvm.features
    if cpu is not None and cpu not in known_cpus(target.triple):
        hint = _closest(cpu, set(known_cpus(target.triple)))
        raise StrategyError(f"llvm.cpu: {cpu!r} is not a CPU LLVM knows for {target.triple.split('-')[0]}"
                            + (f" (did you mean {hint!r}?)" if hint else ""))
    for item in filter(None, (f.strip() for f in (features or "").split(","))):
        name = item.lstrip("+-")
        if item[0] not in "+-" or name not in known_features(target.triple):
            raise StrategyError(f"llvm.features: {item!r} is not '+name' or '-name' with a feature LLVM knows "
                                f"for {target.triple.split('-')[0]}")


def why_not_here(strategy: Strategy) -> str | None:
    """Why this host cannot run a strategy's code although its target runs here, or None: features its
    llvm.features switch on, or that its dot-product instruction needs, which the host lacks."""
    host = host_target()
    asked = (f.strip() for f in (strategy.llvm.features or "").split(","))
    lacking = [f[1:] for f in asked if f.startswith("+") and f[1:] not in host.enabled]
    if lacking:
        return f"its llvm.features enable {', '.join(lacking)}, which {host.label} lacks"
    if strategy.instruction is not None and host.lacks(strategy.instruction):
        return (f"its dot_product step uses {strategy.instruction}, which needs "
                f"{', '.join(host.lacks(strategy.instruction))}: {host.label} lacks it")
    return None


def check_instruction(strategy: Strategy, target: Target) -> None:
    """A dot-product instruction the target cannot have is an error; one the host merely lacks is not
    (the strategy is skipped on this host, and compiles for a target that has it)."""
    inst = strategy.instruction
    if inst is None:
        return
    lacking = target.lacks(inst)
    if lacking and (target.name != "host" or not target.triple.startswith(INSTRUCTIONS[inst].arch)):
        index = next(i for i, step in enumerate(strategy.steps) if step.kind == "dot_product")
        raise StrategyError(f"steps[{index}] (dot_product): {inst} needs {', '.join(lacking)}, which "
                            f"{target.label} does not have")


def check_for_target(strategies: Iterable[Strategy], target: Target, where: str = "") -> None:
    """The checks that depend on the target (vector widths, LLVM's names), for every strategy before any work."""
    for strategy in strategies:
        try:
            check_llvm_names(strategy, target)
            check_instruction(strategy, target)
            if strategy.instruction is not None and target.lacks(strategy.instruction):
                continue  # the host lacks it: skipped at run time, with its reason, so not checked against it
            strategy.validate_for(strategy_lanes(strategy, target))
        except StrategyError as exc:
            raise ConfigError(f"{where}strategy {strategy.name!r} cannot target {target.name}: {exc}") from None


def _parse(path: Path, raw: dict[str, Any]) -> Experiment:
    _known(raw, SECTIONS, "")
    meta = _table(raw, "experiment")
    _known(meta, EXPERIMENT_KEYS, "experiment.")
    name = plain_name(_typed(meta, "name", str, "experiment.", path.stem), "experiment.name")
    kind = _typed(meta, "kind", str, "experiment.", "microkernel")
    if kind not in KINDS:
        raise StrategyError(f"experiment.kind: must be one of {list(KINDS)}, got {kind!r}")
    target = _typed(meta, "target", str, "experiment.", "host")
    try:
        get_target(target)
    except UnknownTarget as exc:
        raise StrategyError(f"experiment.target: {exc}") from None

    timing_raw = _table(raw, "timing")
    _known(timing_raw, TIMING_KEYS, "timing.")
    try:
        min_seconds = check_sample_seconds(_typed(timing_raw, "min_sample_seconds", (int, float), "timing.",
                                                  MIN_SAMPLE_SECONDS), "timing.min_sample_seconds")
        samples = check_count(_typed(timing_raw, "samples", int, "timing.", SAMPLES), SAMPLES, MAX_SAMPLES,
                              "timing.samples")
    except ValueError as exc:
        raise StrategyError(str(exc)) from None

    defaults = _table(raw, "defaults")
    _known(defaults, STRATEGY_KEYS - {"name", "target"}, "defaults.")
    space = _space(raw, kind) if "space" in raw else None
    sweep = _sweep(_table(raw, "sweep"))
    entries = raw.get("strategy", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not (entries or space):
        raise StrategyError("strategy: needs at least one [[strategy]] table (or a [space] to sweep)")
    strategies = tuple(_strategy(entry, defaults, f"strategy[{i}]") for i, entry in enumerate(entries))
    strategy_targets = tuple((s.name, _strategy_target(entry, f"strategy[{i}] ({s.name}).")) for i, (s, entry)
                             in enumerate(zip(strategies, entries)) if "target" in entry)
    seen: set[str] = set()
    for i, s in enumerate(strategies):
        if s.name in seen:
            raise StrategyError(f"strategy[{i}].name: duplicate name {s.name!r}")
        seen.add(s.name)
    for section in ("gemm", "crossover"):
        if kind != section and section in raw:
            raise StrategyError(f"{section}: only for experiment.kind = \"{section}\"")
    gemm = _gemm(raw, strategies) if kind == "gemm" else None
    crossover = _crossover(raw, strategies) if kind == "crossover" else None
    if strategy_targets and kind != "microkernel":
        raise StrategyError("strategy[].target: only micro-kernel experiments take a target per strategy")
    return Experiment(path, name, kind, target, TimingPolicy(float(min_seconds), samples), strategies, space, sweep,
                      gemm, crossover, strategy_targets)


def _strategy_target(entry: dict[str, Any], prefix: str) -> str:
    name = _typed(entry, "target", str, prefix, None)
    try:
        get_target(name)
    except UnknownTarget as exc:
        raise StrategyError(f"{prefix}target: {exc}") from None
    return name


def _int_list(table: dict[str, Any], key: str, prefix: str) -> list[int]:
    values = table.get(key)
    if not isinstance(values, list) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise StrategyError(f"{prefix}{key}: must be a non-empty list of positive integers, got {values!r}")
    return values


def _crossover(raw: dict[str, Any], strategies: tuple[Strategy, ...]) -> CrossoverSettings:
    table = _table(raw, "crossover")
    p = "crossover."
    _known(table, CROSSOVER_KEYS, p)
    dims = [_int_list(table, key, p) for key in ("m", "n", "k")]
    count = len(dims[0]) * len(dims[1]) * len(dims[2])
    if count > MAX_SHAPES:
        raise StrategyError(f"{p}m, n, k: a grid of {count} shapes; at most {MAX_SHAPES}")
    shapes = tuple((m, n, k) for m in dims[0] for n in dims[1] for k in dims[2])
    by_name = {s.name: s for s in strategies}
    raw_routes = table.get("routes")
    if not isinstance(raw_routes, list) or len(raw_routes) < 2 or not all(isinstance(r, dict) for r in raw_routes):
        raise StrategyError(f"{p}routes: needs at least two route tables, got {raw_routes!r}")
    routes = []
    for i, entry in enumerate(raw_routes):
        where = f"{p}routes[{i}]."
        _known(entry, ROUTE_KEYS, where)
        name = _typed(entry, "name", str, where, None)
        if name is None:
            raise StrategyError(f"{where}name: missing")
        strategy = None
        if not _typed(entry, "numpy", bool, where, False):
            wanted = _typed(entry, "strategy", str, where, None)
            if wanted not in by_name:
                raise StrategyError(f"{where}strategy: {wanted!r} is not a [[strategy]] of this config "
                                    f"(known: {', '.join(by_name) or 'none'}), and numpy is not true")
            strategy = by_name[wanted]
        route = Route(name, strategy, _typed(entry, "mc", int, where, _typed(table, "mc", int, p, DEFAULT_MC)),
                      _typed(entry, "nc", int, where, _typed(table, "nc", int, p, DEFAULT_NC)),
                      _typed(entry, "traversal", str, where,
                             _typed(table, "traversal", str, p, DEFAULT_TRAVERSAL)))
        if strategy is not None:
            for shape in shapes:
                try:
                    _fits_in_memory(route.spec(shape), f"{where}shape {list(shape)}")
                except SpecError as exc:
                    raise StrategyError(f"{where}{exc}") from None
        routes.append(route)
    dtypes = {r.strategy.kernel.dtype for r in routes if r.strategy is not None} or {"f32"}
    if len(dtypes) > 1:
        raise StrategyError(f"{p}routes: all routes must use one dtype, got {sorted(dtypes)}")
    dtype = dtypes.pop()
    if DTYPES[dtype].groups != (1,) and any(r.strategy is None for r in routes):
        raise StrategyError(f"{p}routes: numpy has no BLAS routine for {dtype} (its integer and bf16 "
                            "products are plain loops): it is no baseline there")
    return CrossoverSettings(shapes, tuple(routes), dtype)


#: Shapes a GEMM or crossover config may list (each is compiled, verified and timed).
MAX_SHAPES = 10_000


def _fits_in_memory(spec: GemmSpec, where: str) -> None:
    """A shape must leave half the machine's available memory free: refused before allocating."""
    available = available_memory()
    if available is not None and spec.bytes_needed > available // 2:
        raise StrategyError(f"{where}: needs {spec.bytes_needed / 2**30:.1f} GiB for its operands and packing "
                            f"buffers; this machine has {available / 2**30:.1f} GiB available")


def _gemm(raw: dict[str, Any], strategies: tuple[Strategy, ...]) -> GemmSettings:
    table = _table(raw, "gemm")
    _known(table, GEMM_KEYS, "gemm.")
    shapes = table.get("shapes")
    if not isinstance(shapes, list) or not shapes or not all(
            isinstance(s, list) and len(s) == 3 and all(isinstance(d, int) and not isinstance(d, bool) for d in s)
            for s in shapes):
        raise StrategyError(f"gemm.shapes: must be a list of [M, N, K] integer triples, got {shapes!r}")
    if len(shapes) > MAX_SHAPES:
        raise StrategyError(f"gemm.shapes: {len(shapes)} shapes; at most {MAX_SHAPES}")
    default = GemmSettings(())
    settings = GemmSettings(tuple(tuple(s) for s in shapes), _typed(table, "mc", int, "gemm.", default.mc),
                            _typed(table, "nc", int, "gemm.", default.nc),
                            _typed(table, "traversal", str, "gemm.", default.traversal),
                            _typed(table, "accumulate", bool, "gemm.", default.accumulate),
                            _typed(table, "threads", int, "gemm.", default.threads),
                            _typed(table, "split", str, "gemm.", default.split),
                            _typed(table, "pack_bytes", (int, str), "gemm.", default.pack_bytes),
                            _typed(table, "inner", str, "gemm.", default.inner))
    check_threads(settings.threads, "gemm.threads")
    for knob in GEMM_KNOBS:  # words are checked before any strategy: a sweep config lists none
        if knob.choices is not None:
            knob.check(getattr(settings, knob.name), "gemm.")
    for strategy in strategies:
        for shape in settings.shapes:
            try:
                _fits_in_memory(settings.spec(strategy, shape), f"gemm.shapes {list(shape)}")
            except SpecError as exc:
                raise StrategyError(f"gemm ({strategy.name}, shape {list(shape)}).{exc}") from None
    return settings


def check_threads(threads: int, where: str) -> None:
    """A thread count this machine can run: 1 up to the CPUs this process may use."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise StrategyError(f"{where}: must be from 1 to {cpus} (the CPUs this process may use), got {threads}")


def _space(raw: dict[str, Any], kind: str = "microkernel") -> SearchSpace:
    table = _table(raw, "space")
    _known(table, set(knobs()) | {k.name for k in GEMM_KNOBS}, "space.")
    choices = {knob: tuple(values if isinstance(values, list) else [values]) for knob, values in table.items()}
    space = SearchSpace(choices, _typed(_table(raw, "sweep"), "fit_registers", bool, "sweep.", True), kind)
    for value in choices.get("threads", ()):  # (the knob's domain is checked above: integers)
        check_threads(value, "space.threads")
    return space


def _sweep(table: dict[str, Any]) -> SweepSettings:
    _known(table, SWEEP_KEYS, "sweep.")
    p = "sweep."
    default = SweepSettings()
    screen = TimingPolicy(_typed(table, "screen_min_sample_seconds", (int, float), p,
                                 default.screen.min_sample_seconds),
                          _typed(table, "screen_samples", int, p, default.screen.samples))
    return SweepSettings(
        method=_typed(table, "method", str, p, default.method), budget=_typed(table, "budget", int, p, None),
        time_seconds=_typed(table, "time_seconds", (int, float), p, None), seed=_typed(table, "seed", int, p, 0),
        jobs=_typed(table, "jobs", int, p, None),
        timeout_seconds=_typed(table, "timeout_seconds", (int, float), p, default.timeout_seconds),
        screen=screen, leaders=_typed(table, "leaders", int, p, default.leaders))


def _strategy(entry: dict[str, Any], defaults: dict[str, Any], where: str) -> Strategy:
    _known(entry, STRATEGY_KEYS, f"{where}.")
    merged = {**defaults, **entry}
    merged["llvm"] = {**_table(defaults, "llvm", "defaults."), **_table(entry, "llvm", f"{where}.")}
    for key in REQUIRED:
        if key not in merged:
            raise StrategyError(f"{where}.{key}: missing (set it in the strategy or in [defaults])")
    name = _typed(merged, "name", str, f"{where}.", None)
    if name is None:
        raise StrategyError(f"{where}.name: missing")
    name = plain_name(name, f"{where}.name")
    where = f"{where} ({name})"
    try:
        kernel = KernelSpec(merged["mr"], merged["nr"], merged["kc"], merged.get("dtype", "f32"),
                            merged.get("k_group"))
    except SpecError as exc:
        raise StrategyError(f"{where}.{exc}") from None
    raw_steps = merged.get("steps")
    if raw_steps is None:
        steps = REGISTER_RESIDENT_STEPS
    elif not isinstance(raw_steps, list):
        raise StrategyError(f"{where}.steps: must be a list of steps, got {raw_steps!r}")
    else:
        steps = tuple(step_from_config(s, f"{where}.steps[{i}]") for i, s in enumerate(raw_steps))
    llvm = LLVMOptions.from_config(merged["llvm"], f"{where}.llvm")
    vector_bits = _typed(merged, "vector_bits", int, f"{where}.", None)
    try:
        return Strategy(name, kernel, steps, llvm, vector_bits)
    except StrategyError as exc:
        raise StrategyError(f"{where}.{exc}") from None


#: Names become file and folder names (stage dumps, plots) and table cells: plain ones only.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]{0,99}")


def plain_name(name: str, where: str) -> str:
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise StrategyError(f"{where}: must be a plain name (letters, digits and . _ + @ = -, at most 100, "
                            f"starting with a letter or digit), got {name[:60]!r}")
    return name


def _known(table: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            hint = _closest(key, allowed)
            raise StrategyError(f"{prefix}{key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else
                                                                  f" (allowed: {', '.join(sorted(allowed))})"))


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib
    matches = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _table(raw: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise StrategyError(f"{prefix}{key}: must be a table, got {value!r}")
    return value


def _typed(table: dict[str, Any], key: str, types: type | tuple[type, ...], prefix: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise StrategyError(f"{prefix}{key}: must be {names}, got {value!r}")
    return value
