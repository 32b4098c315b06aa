"""Experiment configs (TOML) -> validated Experiment. Every problem is one line naming file and field."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from kernels_mlir.small_gemm import SmallGemmSpec
from kernels_mlir.spec import DTYPES, KernelSpec, SpecError
from pipelines.compile import strategy_lanes
from pipelines.llvm_catalog import known_cpus, known_features
from pipelines.model import AUTO, NoModel, blocking, register_tile
from pipelines.targets import TARGETS, Target, UnknownTarget, get_target, host_target, missing_features
from transforms.errors import StrategyError
from transforms.instructions import INSTRUCTIONS
from transforms.llvm_options import LLVMOptions
from transforms.steps import load_plugins, step_from_config
from transforms.strategy import Strategy, default_steps

from runner import files
from runner.config.fields import MAX_SHAPES, closest, fits_in_memory, int_list, known, plain_name, table_of, typed
from runner.measure.characterize import with_measured_datapath
from runner.kinds import KINDS, ProblemKind, kind_knobs, kind_named, section_names
from runner.kinds.gemm import DEFAULT_MC, DEFAULT_NC, DEFAULT_TRAVERSAL, check_shape, gemm_spec
from runner.measure.timing import (MAX_SAMPLES, MIN_SAMPLE_SECONDS, SAMPLES, TimingPolicy, check_count,
                                   check_sample_seconds)
from runner.search.space import SearchSpace, SweepSettings, knobs


class ConfigError(ValueError):
    """Bad input; str() is the one line the CLI prints before exiting with status 2."""


#: Sections of every config; each problem kind may add its own (ProblemKind.section).
SECTIONS = {"experiment", "timing", "defaults", "strategy", "space", "sweep", "crossover"}
EXPERIMENT_KEYS = {"name", "description", "target", "kind"}
#: The study kind beside the problem kinds: routes compared over a grid of GEMM shapes.
CROSSOVER = "crossover"
CROSSOVER_KEYS = {"m", "n", "k", "square", "routes", "mc", "nc", "traversal"}
ROUTE_KEYS = {"name", "strategy", "numpy", "onnxruntime", "mc", "nc", "traversal"}
#: Libraries a crossover route may be instead of our code (the route table's key for each is true).
LIBRARIES = ("numpy", "onnxruntime")
#: The traversal words of a route that is the shape-specialized small GEMM (kernels_mlir.small_gemm),
#: and how each takes B: as it is, or packed once beforehand (a constant weight).
SMALL = {"small": "rows", "small_packed_b": "packed"}
TIMING_KEYS = {"min_sample_seconds", "samples"}
STRATEGY_KEYS = {"name", "mr", "nr", "kc", "dtype", "k_group", "scalable", "steps", "llvm", "vector_bits", "target"}
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
    #: The problem kind's settings, read from its own section (a GEMM's shapes and blocking).
    settings: Any = None
    #: For kind "crossover": the shape grid and the routes compared on it.
    crossover: CrossoverSettings | None = None
    #: Strategies tied to one ISA name their own target (strategy name -> target name).
    strategy_targets: tuple[tuple[str, str], ...] = ()

    def target_of(self, strategy: Strategy) -> str:
        """The target a strategy is compiled for: its own when it names one, else the experiment's."""
        return dict(self.strategy_targets).get(strategy.name, self.target)

    @property
    def problem_kind(self) -> ProblemKind:
        """The kind of problem its strategies run on (not for a crossover study)."""
        return kind_named(self.kind)

    def problems_of(self, strategy: Strategy) -> list:
        """The problems a strategy of this config runs on: its kind's, or for a crossover study (whose
        routes time GEMMs of every shape) its own micro-kernel."""
        if self.kind == CROSSOVER:
            return [strategy.kernel]
        return self.problem_kind.problems(self.settings, strategy)


@dataclass(frozen=True)
class Route:
    """One way to compute C = A.B: our GEMM around a strategy's micro-kernel (traversal "small": the
    shape-specialized small GEMM in its register tile), or a library (numpy.matmul, or ONNX Runtime's
    MatMul chain; one thread)."""

    name: str
    strategy: Strategy | None  # None: the library's
    mc: int = DEFAULT_MC
    nc: int = DEFAULT_NC
    traversal: str = DEFAULT_TRAVERSAL
    library: str | None = None

    def spec(self, shape: tuple[int, int, int]):
        if self.traversal in SMALL:
            k = self.strategy.kernel
            return SmallGemmSpec(*shape, dtype=k.dtype, mr=k.mr, nr=k.nr, weights=SMALL[self.traversal])
        return gemm_spec(self.strategy, shape, mc=self.mc, nc=self.nc, traversal=self.traversal)


@dataclass(frozen=True)
class CrossoverSettings:
    shapes: tuple[tuple[int, int, int], ...]
    #: Route A is compared with route B; further routes are measured too (which is best per shape).
    routes: tuple[Route, ...]
    dtype: str


#: A config is a few kilobytes; anything this large is not one (and /dev/zero never ends).
MAX_CONFIG_BYTES = 1 << 20


def read_config(path: Path) -> dict[str, Any]:
    """The TOML of a config file: a regular file (a link to one is followed), bounded in size, UTF-8;
    every problem one line."""
    try:
        text = files.read_text(path, MAX_CONFIG_BYTES, "a config", follow_links=True)
    except files.InputError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return tomllib.loads(text)
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
        check_for_target((strategy,), get_target(experiment.target_of(strategy)), f"{path}: ", skippable=True)
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
        hint = closest(cpu, set(known_cpus(target.triple)))
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


def check_instruction(strategy: Strategy, target: Target, skippable: bool = False) -> None:
    """A dot-product instruction the target lacks is an error (LLVM would abort selecting it), naming
    the step, the instruction, the feature and a target that has it; with `skippable` (run and sweep),
    one the host merely lacks is not: the strategy is skipped on this host, with its reason."""
    inst = strategy.instruction
    if inst is None:
        return
    lacking = target.lacks(inst)
    host_merely_lacks = target.name == "host" and target.triple.startswith(INSTRUCTIONS[inst].arch)
    if lacking and not (skippable and host_merely_lacks):
        index = next(i for i, step in enumerate(strategy.steps) if step.kind == "dot_product")
        having = next((t.name for t in TARGETS.values() if t.name != "host" and not t.lacks(inst)), None)
        raise StrategyError(f"steps[{index}] (dot_product): {inst} needs {', '.join(lacking)}, which "
                            f"{target.label} does not have" + (f" (it compiles for --target {having})" if having else ""))


def check_scalable(strategy: Strategy, target: Target) -> None:
    """An SVE or SME kernel for a core without it is an error, naming a target that has it."""
    kind = strategy.kernel.scalable
    reason = None if kind is None else target.lacks_scalable(kind)
    if reason is not None:
        having = next((t.name for t in TARGETS.values() if t.lacks_scalable(kind) is None), None)
        raise StrategyError(f"scalable: a {kind} kernel, but {reason}" +
                            (f" (it compiles for --target {having})" if having else ""))


def check_for_target(strategies: Iterable[Strategy], target: Target, where: str = "", skippable: bool = False) -> None:
    """The checks that depend on the target (vector widths, LLVM's names, the features of a dot-product
    instruction, SVE and SME), for every strategy before any work; `skippable`: see check_instruction."""
    for strategy in strategies:
        try:
            check_llvm_names(strategy, target)
            check_scalable(strategy, target)
            check_instruction(strategy, target, skippable)
            if strategy.instruction is not None and target.lacks(strategy.instruction):
                continue  # the host lacks it: skipped at run time, with its reason, so not checked against it
            strategy.validate_for(strategy_lanes(strategy, target))
        except StrategyError as exc:
            raise ConfigError(f"{where}strategy {strategy.name!r} cannot target {target.name}: {exc}") from None


def _parse(path: Path, raw: dict[str, Any]) -> Experiment:
    known(raw, SECTIONS | section_names(), "")
    meta = table_of(raw, "experiment")
    known(meta, EXPERIMENT_KEYS, "experiment.")
    name = plain_name(typed(meta, "name", str, "experiment.", path.stem), "experiment.name")
    kind = typed(meta, "kind", str, "experiment.", KernelSpec.kind)  # a config's default: its strategies' kernels
    if kind not in (*KINDS, CROSSOVER):
        raise StrategyError(f"experiment.kind: must be one of {[*KINDS, CROSSOVER]}, got {kind!r}"
                            " (a plugin's kind needs its module in $UKL_PLUGINS)")
    target = typed(meta, "target", str, "experiment.", "host")
    try:
        get_target(target)
    except UnknownTarget as exc:
        raise StrategyError(f"experiment.target: {exc}") from None

    timing_raw = table_of(raw, "timing")
    known(timing_raw, TIMING_KEYS, "timing.")
    try:
        min_seconds = check_sample_seconds(typed(timing_raw, "min_sample_seconds", (int, float), "timing.",
                                                  MIN_SAMPLE_SECONDS), "timing.min_sample_seconds")
        samples = check_count(typed(timing_raw, "samples", int, "timing.", SAMPLES), SAMPLES, MAX_SAMPLES,
                              "timing.samples")
    except ValueError as exc:
        raise StrategyError(str(exc)) from None

    defaults = table_of(raw, "defaults")
    known(defaults, STRATEGY_KEYS - {"name", "target"}, "defaults.")
    space = _space(raw, kind) if "space" in raw else None
    sweep = _sweep(table_of(raw, "sweep"))
    entries = raw.get("strategy", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not (entries or space):
        raise StrategyError("strategy: needs at least one [[strategy]] table (or a [space] to sweep)")
    strategies = tuple(_strategy(entry, defaults, f"strategy[{i}]", entry.get("target", target))
                       for i, entry in enumerate(entries))
    strategy_targets = tuple((s.name, _strategy_target(entry, f"strategy[{i}] ({s.name}).")) for i, (s, entry)
                             in enumerate(zip(strategies, entries)) if "target" in entry)
    seen: set[str] = set()
    for i, s in enumerate(strategies):
        if s.name in seen:
            raise StrategyError(f"strategy[{i}].name: duplicate name {s.name!r}")
        seen.add(s.name)
    owners = {k.section: k.name for k in KINDS.values() if k.section is not None}
    for section, owner in (*owners.items(), (CROSSOVER, CROSSOVER)):
        if kind != owner and section in raw:
            raise StrategyError(f"{section}: only for experiment.kind = \"{owner}\"")
    settings = None
    if kind != CROSSOVER:
        problem_kind = kind_named(kind)
        section = problem_kind.section
        settings = problem_kind.bind_target(problem_kind.read_section(table_of(raw, section) if section else {},
                                                                      strategies), target)
    crossover = _crossover(raw, strategies) if kind == CROSSOVER else None
    if strategy_targets and (kind == CROSSOVER or problem_kind.section is not None):
        raise StrategyError("strategy[].target: only micro-kernel experiments take a target per strategy")
    return Experiment(path, name, kind, target, TimingPolicy(float(min_seconds), samples), strategies, space, sweep,
                      settings, crossover, strategy_targets)


def _strategy_target(entry: dict[str, Any], prefix: str) -> str:
    name = typed(entry, "target", str, prefix, None)
    try:
        get_target(name)
    except UnknownTarget as exc:
        raise StrategyError(f"{prefix}target: {exc}") from None
    return name


def _crossover(raw: dict[str, Any], strategies: tuple[Strategy, ...]) -> CrossoverSettings:
    table = table_of(raw, "crossover")
    p = "crossover."
    known(table, CROSSOVER_KEYS, p)
    if "square" in table:  # N x N x N for each N: the diagonal a grid cannot give
        if {"m", "n", "k"} & set(table):
            raise StrategyError(f"{p}square: takes the place of m, n and k (give one or the other)")
        sizes = int_list(table, "square", p)
        if len(sizes) > MAX_SHAPES:
            raise StrategyError(f"{p}square: {len(sizes)} shapes; at most {MAX_SHAPES}")
        shapes = tuple((s, s, s) for s in sizes)
    else:
        dims = [int_list(table, key, p) for key in ("m", "n", "k")]
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
        known(entry, ROUTE_KEYS, where)
        name = typed(entry, "name", str, where, None)
        if name is None:
            raise StrategyError(f"{where}name: missing")
        if name in {r.name for r in routes}:  # each route's figures are stored under its name
            raise StrategyError(f"{where}name: duplicate route name {name!r}")
        strategy = None
        libraries = [lib for lib in LIBRARIES if typed(entry, lib, bool, where, False)]
        if len(libraries) > 1:
            raise StrategyError(f"{where}: a route is one library, not {' and '.join(libraries)}")
        if not libraries:
            wanted = typed(entry, "strategy", str, where, None)
            if wanted not in by_name:
                raise StrategyError(f"{where}strategy: {wanted!r} is not a [[strategy]] of this config "
                                    f"(known: {', '.join(by_name) or 'none'}), and no library "
                                    f"({', '.join(LIBRARIES)}) is true")
            strategy = by_name[wanted]
        route = Route(name, strategy, typed(entry, "mc", int, where, typed(table, "mc", int, p, DEFAULT_MC)),
                      typed(entry, "nc", int, where, typed(table, "nc", int, p, DEFAULT_NC)),
                      typed(entry, "traversal", str, where,
                             typed(table, "traversal", str, p, DEFAULT_TRAVERSAL)), libraries[0] if libraries else None)
        if strategy is not None:
            for shape in shapes:
                try:
                    fits_in_memory(route.spec(shape).bytes_needed, f"{where}shape {list(shape)}")
                except SpecError as exc:
                    raise StrategyError(f"{where}{exc}") from None
        routes.append(route)
    dtypes = {r.strategy.kernel.dtype for r in routes if r.strategy is not None} or {"f32"}
    if len(dtypes) > 1:
        raise StrategyError(f"{p}routes: all routes must use one dtype, got {sorted(dtypes)}")
    dtype = dtypes.pop()
    for shape in shapes:  # every route's, NumPy's too: the operands and the check are the same
        check_shape(shape, dtype, f"{p}m, n, k: shape")
    if DTYPES[dtype].groups != (1,) and any(r.strategy is None for r in routes):
        raise StrategyError(f"{p}routes: the libraries have no GEMM routine for {dtype} (numpy's integer and bf16 "
                            "products are plain loops): they are no baseline there")
    return CrossoverSettings(shapes, tuple(routes), dtype)


def _space(raw: dict[str, Any], kind: str) -> SearchSpace:
    table = table_of(raw, "space")
    known(table, set(knobs()) | set(kind_knobs()), "space.")
    choices = {knob: tuple(values if isinstance(values, list) else [values]) for knob, values in table.items()}
    problem_kind = None if kind == CROSSOVER else kind_named(kind)
    space = SearchSpace(choices, typed(table_of(raw, "sweep"), "fit_registers", bool, "sweep.", True), problem_kind)
    if problem_kind is not None:
        problem_kind.check_space(choices)
    return space


def _sweep(table: dict[str, Any]) -> SweepSettings:
    known(table, SWEEP_KEYS, "sweep.")
    p = "sweep."
    default = SweepSettings()
    screen = TimingPolicy(typed(table, "screen_min_sample_seconds", (int, float), p,
                                 default.screen.min_sample_seconds),
                          typed(table, "screen_samples", int, p, default.screen.samples))
    return SweepSettings(
        method=typed(table, "method", str, p, default.method), budget=typed(table, "budget", int, p, None),
        time_seconds=typed(table, "time_seconds", (int, float), p, None), seed=typed(table, "seed", int, p, 0),
        jobs=typed(table, "jobs", int, p, None),
        timeout_seconds=typed(table, "timeout_seconds", (int, float), p, default.timeout_seconds),
        screen=screen, leaders=typed(table, "leaders", int, p, default.leaders))


def _resolve_auto(merged: dict[str, Any], target: Any, where: str) -> None:
    """mr, nr and kc given as "auto" take the analytical model's values for the strategy's target and
    dtype (at its vector width): the register tile from the datapath and registers, kc from L1."""
    auto = [key for key in REQUIRED if merged.get(key) == AUTO]
    if not auto:
        return
    dtype = merged.get("dtype", "f32")
    if not isinstance(target, str) or not isinstance(dtype, str):
        return  # the usual checks name them
    if dtype not in ("f32", "f64"):
        raise StrategyError(f"{where}.{auto[0]}: \"auto\" is the FMA model's (f32, f64), not {dtype!r}")
    try:
        chosen = with_measured_datapath(get_target(target))  # a host the table lacks: measured
        tile = register_tile(chosen, dtype, typed(merged, "vector_bits", int, f"{where}.", None))
        found = {"mr": tile.mr, "nr": tile.nr, "kc": blocking(chosen, dtype, tile.mr, tile.nr).kc}
    except (UnknownTarget, NoModel) as exc:
        raise StrategyError(f"{where}.{auto[0]}: \"auto\" needs the model, which cannot choose: {exc}") from None
    merged.update({key: found[key] for key in auto})


def _strategy(entry: dict[str, Any], defaults: dict[str, Any], where: str, target: Any = "host") -> Strategy:
    known(entry, STRATEGY_KEYS, f"{where}.")
    merged = {**defaults, **entry}
    merged["llvm"] = {**table_of(defaults, "llvm", "defaults."), **table_of(entry, "llvm", f"{where}.")}
    for key in REQUIRED:
        if key not in merged:
            raise StrategyError(f"{where}.{key}: missing (set it in the strategy or in [defaults])")
    name = typed(merged, "name", str, f"{where}.", None)
    if name is None:
        raise StrategyError(f"{where}.name: missing")
    name = plain_name(name, f"{where}.name")
    where = f"{where} ({name})"
    _resolve_auto(merged, target, where)
    try:
        kernel = KernelSpec(merged["mr"], merged["nr"], merged["kc"], merged.get("dtype", "f32"),
                            merged.get("k_group"), merged.get("scalable"))
    except SpecError as exc:
        raise StrategyError(f"{where}.{exc}") from None
    raw_steps = merged.get("steps")
    if raw_steps is None:
        steps = default_steps(kernel)
    elif not isinstance(raw_steps, list):
        raise StrategyError(f"{where}.steps: must be a list of steps, got {raw_steps!r}")
    else:
        steps = tuple(step_from_config(s, f"{where}.steps[{i}]") for i, s in enumerate(raw_steps))
    llvm = LLVMOptions.from_config(merged["llvm"], f"{where}.llvm")
    vector_bits = typed(merged, "vector_bits", int, f"{where}.", None)
    try:
        return Strategy(name, kernel, steps, llvm, vector_bits)
    except StrategyError as exc:
        raise StrategyError(f"{where}.{exc}") from None


