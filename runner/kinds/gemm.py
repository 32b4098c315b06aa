"""Kind `gemm`: a full GEMM (any M, N, K) around the strategy's micro-kernel, blocked and traversed
as its [gemm] section (or a sweep point's GEMM knobs) says, timed against OpenBLAS and BLIS.

The spec and its loop nest are kernels_mlir.gemm; compiling the driver with its micro-kernels is
pipelines.compile_gemm; this module is everything the harness needs to know of the kind.
"""
from __future__ import annotations

import dataclasses
import sys
from functools import lru_cache
from dataclasses import dataclass
from typing import Any, Callable

from kernels_mlir.gemm import (DEFAULT_MC, DEFAULT_NC, DEFAULT_TRAVERSAL, INNER_LOOPS, MAX_DIM, MAX_THREADS, SPLITS,
                               TRAVERSALS, GemmSpec)
from kernels_mlir.names import GEMM as GEMM_ENTRY, kernel_symbol
from kernels_mlir.operands import Operands
from kernels_mlir.spec import DTYPES, KernelSpec, SpecError
from pipelines.compile_gemm import compile_gemm
from pipelines import model
from pipelines.model import AUTO
from pipelines.targets import TARGETS, Target, get_target, host_target
from transforms.errors import StrategyError
from transforms.knobs import Knob, Point
from transforms.strategy import Strategy

from runner.cli.output import gemm_table
from runner.config.fields import MAX_SHAPES, check_threads, fits_in_memory, known, typed
from runner.kinds.base import Compiled, SharedEntryKind, problem_knobs, ratio_cell, register, scalable_length
from runner.measure.baselines import Baseline, BaselineUnavailable, blis_gemm, numpy_matmul
from runner.measure.mkl import mkl_gemm
from runner.measure.record import Record

#: The GEMM's blocking around the micro-kernel (kc is the micro-kernel's), its traversal (blis, tiles,
#: direct), its threads and the loop they split, the innermost register-tile loop and the packing bound:
#: the [gemm] section's settings and the sweep's GEMM knobs, declared once.
KNOBS: tuple[Knob, ...] = (
    Knob("mc", DEFAULT_MC, maximum=MAX_DIM, words=(AUTO,)),
    Knob("nc", DEFAULT_NC, maximum=MAX_DIM, words=(AUTO,)),
    Knob("traversal", DEFAULT_TRAVERSAL, TRAVERSALS),
    Knob("threads", 1, maximum=MAX_THREADS),
    Knob("split", "jc", SPLITS),
    Knob("inner", "ir", INNER_LOOPS),
    Knob("pack_bytes", "unbounded", minimum=1, maximum=1 << 40, words=("unbounded",)),
)
_DEFAULTS = {k.name: k.default for k in KNOBS}
SECTION_KEYS = {"shapes", "accumulate", *_DEFAULTS}


def model_blocking(strategy: Strategy, target: Target) -> dict[str, int]:
    """mc and nc from the analytical model (pipelines.model) for the strategy's kernel on `target`: A's
    block in half of L2, B's in half of the core's L3 share (StrategyError where it cannot choose)."""
    k = strategy.kernel
    try:
        chosen = model.blocking(target, k.dtype, k.mr, k.nr, kc=k.kc)
    except model.NoModel as exc:
        raise StrategyError(f"gemm: \"auto\" blocking needs the model, which cannot choose: {exc}") from None
    return {"mc": chosen.mc, "nc": chosen.nc}


def gemm_spec(strategy: Strategy, shape: tuple[int, int, int], accumulate: bool = False,
              target: Target | None = None, **blocking: Any) -> GemmSpec:
    """The GEMM around `strategy`'s micro-kernel (whose kc is the k-blocking); `blocking` sets any
    of the KNOBS (the others keep their defaults); mc or nc "auto" take the model's for `target`."""
    b = {**_DEFAULTS, **blocking}
    if AUTO in (b["mc"], b["nc"]):
        chosen = model_blocking(strategy, target or host_target())
        b.update({key: chosen[key] for key in ("mc", "nc") if b[key] == AUTO})
    if b["pack_bytes"] == "unbounded":
        b["pack_bytes"] = None  # GemmSpec rejects other words
    return GemmSpec(*shape, strategy.kernel, accumulate=accumulate, **b,
                    vector_bits=scalable_length(strategy, target or host_target()))


def probe(shape: tuple[int, int, int], dtype: str) -> GemmSpec:
    """The plainest GEMM of this shape and dtype (a 1x1 tile): what every GEMM of it shares, its
    operands and their check (SpecError when no GEMM can have the shape)."""
    return GemmSpec(*shape, KernelSpec(1, 1, DTYPES[dtype].groups[0], dtype))


def check_shape(shape: tuple[int, int, int], dtype: str, where: str) -> None:
    """A shape any GEMM of `dtype` can take, and that fits this machine's memory (operands, checks,
    baselines), whatever strategy, route or sweep point computes it: StrategyError naming it otherwise."""
    try:
        spec = probe(shape, dtype)
    except SpecError as exc:
        raise StrategyError(f"{where} {list(shape)}: {exc}") from None
    fits_in_memory(spec.bytes_needed, f"{where} {list(shape)}")


@dataclass(frozen=True)
class GemmSettings:
    """The [gemm] section: the shapes, whether C accumulates, and a value for each of the KNOBS."""

    shapes: tuple[tuple[int, int, int], ...]
    accumulate: bool = False
    blocking: tuple[tuple[str, Any], ...] = tuple(_DEFAULTS.items())
    #: The config's target: what "auto" blocking is chosen for.
    target: str = "host"

    def with_point(self, point: Point | None) -> "GemmSettings":
        """These settings with a sweep point's GEMM knobs, and the knobs that mean nothing for the
        traversal reset (so equivalent candidates are one): mc, nc and the packing bound block only
        BLIS's loops; the split means nothing for one thread or the direct traversal (which always
        splits rows), nor does the register-tile loop order there."""
        b = {**dict(self.blocking), **(problem_knobs(point, GEMM) if point is not None else {})}
        if b["traversal"] != "blis":
            b.update(mc=DEFAULT_MC, nc=DEFAULT_NC, pack_bytes="unbounded")
        if b["traversal"] == "direct" or b["threads"] == 1:
            b.update(split="jc")
        if b["traversal"] == "direct":
            b.update(inner="ir")
        return dataclasses.replace(self, blocking=tuple(b.items()))

    def spec(self, strategy: Strategy, shape: tuple[int, int, int]) -> GemmSpec:
        return gemm_spec(strategy, shape, self.accumulate, get_target(self.target), **dict(self.blocking))


class GemmKind(SharedEntryKind):
    name = "gemm"
    section = "gemm"
    knobs = KNOBS
    plots = ("baselines", "knob_effects", "optuna")

    def read_section(self, table: dict[str, Any], strategies: tuple[Strategy, ...]) -> GemmSettings:
        known(table, SECTION_KEYS, "gemm.")
        shapes = table.get("shapes")
        if not isinstance(shapes, list) or not shapes or not all(
                isinstance(s, list) and len(s) == 3 and all(isinstance(d, int) and not isinstance(d, bool) for d in s)
                for s in shapes):
            raise StrategyError(f"gemm.shapes: must be a list of [M, N, K] integer triples, got {shapes!r}")
        if len(shapes) > MAX_SHAPES:
            raise StrategyError(f"gemm.shapes: {len(shapes)} shapes; at most {MAX_SHAPES}")
        blocking = {}
        for knob in KNOBS:  # words are checked before any strategy: a sweep config lists none
            types = str if knob.choices is not None else (int, str) if knob.words else int
            value = typed(table, knob.name, types, "gemm.", knob.default)
            if knob.choices is not None:
                knob.check(value, "gemm.")
            blocking[knob.name] = value
        check_threads(blocking["threads"], "gemm.threads")
        settings = GemmSettings(tuple(tuple(s) for s in shapes), typed(table, "accumulate", bool, "gemm.", False),
                                tuple(blocking.items()))
        for shape in settings.shapes:  # with or without strategies: a sweep config may list none
            for dtype in {s.kernel.dtype for s in strategies} or {"f32"}:
                check_shape(shape, dtype, "gemm.shapes")
        for strategy in strategies:
            if strategy.kernel.scalable:  # its tile depends on the target's length: counted in problems()
                continue
            for shape in settings.shapes:
                try:
                    fits_in_memory(settings.spec(strategy, shape).bytes_needed, f"gemm.shapes {list(shape)}")
                except SpecError as exc:
                    raise StrategyError(f"gemm ({strategy.name}, shape {list(shape)}).{exc}") from None
        return settings

    def bind_target(self, settings: GemmSettings, target: str) -> GemmSettings:
        return dataclasses.replace(settings, target=target)

    def vector_lengths(self, problem: GemmSpec, target: Target) -> tuple[int | None, ...]:
        """Built around a scalable kernel for one length, it runs at that one."""
        return (problem.vector_bits,)

    def problems(self, settings: GemmSettings, strategy: Strategy, point: Point | None = None) -> list[GemmSpec]:
        settings = settings.with_point(point)
        specs = [settings.spec(strategy, shape) for shape in settings.shapes]
        if strategy.kernel.scalable:  # its packing is sized by the target's length: counted once it is known
            for spec in specs:
                fits_in_memory(spec.bytes_needed, f"gemm.shapes {[spec.m, spec.n, spec.k]}")
        return specs

    def problems_per_strategy(self, settings: GemmSettings) -> int:
        return len(settings.shapes)

    def to_dict(self, problem: GemmSpec) -> dict[str, Any]:
        return problem.to_dict()

    def from_dict(self, data: dict[str, Any]) -> GemmSpec:
        return GemmSpec.from_dict(data)

    def label(self, strategy: Strategy, p: GemmSpec) -> str:
        """The strategy's name, the shape, and how the GEMM was blocked and traversed."""
        how = p.traversal + (f"-mc{p.mc}-nc{p.nc}" if p.traversal == "blis" else "") + \
            (f"-pb{p.pack_bytes}" if p.pack_bytes is not None and p.traversal == "blis" else "") + \
            (f"-{p.inner}" if p.inner != "ir" and p.traversal != "direct" else "") + \
            (f"-t{p.threads}{p.split if p.traversal != 'direct' else ''}" if p.threads > 1 else "")
        return f"{strategy.name}@{p.m}x{p.n}x{p.k}/{how}"

    def strategy_name(self, label: str) -> str:
        return label.split("@")[0]

    def identity(self, strategy: Strategy, problem: GemmSpec) -> dict[str, Any]:
        key = self.key(strategy, problem)
        return {"candidate_key": key, "gemm_hash": key, "gemm": self.to_dict(problem),
                "shape": [problem.m, problem.n, problem.k]}

    def build(self, strategy: Strategy, problem: GemmSpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        compiled = compile_gemm(problem, strategy, target, jit=jit)
        return Compiled(compiled.code, compiled.vector_bits)

    def hot_function(self, problem: GemmSpec) -> str:
        """The micro-kernel at the block's depth; the direct traversal's own loops otherwise."""
        return kernel_symbol(problem.kernel_kcs[0]) if problem.kernel_kcs else GEMM_ENTRY

    def baselines(self, problem: GemmSpec, ops: Operands) -> list[Baseline]:
        """OpenBLAS, BLIS and MKL at the GEMM's thread count, for the dtypes they have (not int8 or bf16);
        MKL where its wheel installs (x86-64), else skipped with one line."""
        if problem.dtype not in ("f32", "f64"):
            return []
        found = [numpy_matmul(ops.a, ops.b, ops.c, problem.threads), blis_gemm(ops.a, ops.b, ops.c, problem.threads)]
        try:
            found.append(mkl_gemm(ops.a, ops.b, ops.c, problem.threads))
        except BaselineUnavailable as exc:
            _skipped(str(exc))
        return found

    def knob_values(self, record: dict[str, Any]) -> dict[str, Any]:
        values = super().knob_values(record)
        if values["pack_bytes"] is None:
            values["pack_bytes"] = "unbounded"
        return values

    def report_columns(self, records: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
        """The shape, the blocking, and each baseline's GFLOP/s with our ratio to it and its interval."""
        def blocking(r: dict[str, Any]) -> str:
            g = r.get("gemm") or {}
            return f"{g.get('traversal')} {g.get('mc')}/{g.get('nc')}/{g.get('kc')}"

        def baseline(name: str, ratio: bool) -> Callable[[dict[str, Any]], str]:
            def cell(r: dict[str, Any]) -> str:
                if ratio:
                    return ratio_cell(r, name)
                b = next((b for b in r.get("baselines") or [] if b.get("name") == name), None)
                return "-" if b is None or b.get("gflops") is None else f"{b['gflops']:.2f}"
            return cell
        names = list(dict.fromkeys(b.get("name") for r in records for b in r.get("baselines") or []))
        return [("M x N x K", lambda r: "x".join(map(str, r.get("shape") or []))), ("blocking", blocking),
                *[col for name in names for col in ((f"{name} GFLOP/s", baseline(name, False)),
                                                    (f"ours/{name} [95% CI]", baseline(name, True)))]]

    def report_summaries(self, records: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
        """The best point of each shape per traversal, and per blocking (traversal, mc/nc/kc, packing bound)."""
        def best_by(key: Callable[[dict[str, Any]], str]) -> list[list[str]]:
            best: dict[tuple, dict[str, Any]] = {}
            for r in records:  # best first: the first of each key is its best
                best.setdefault(("x".join(map(str, r.get("shape") or [])), key(r)), r)
            return [[shape, value, r["name"], f"{r['gflops']:.2f}", f"{100 * (r.get('fraction_of_peak') or 0):.1f}%"]
                    for (shape, value), r in sorted(best.items(), key=lambda item: (item[0][0], -item[1]["gflops"]))]
        g = lambda r: r.get("gemm") or {}  # noqa: E731
        headers = lambda what: ["M x N x K", what, "best strategy", "GFLOP/s", "of peak"]  # noqa: E731
        model_rows = _model_blocking_rows(records)
        return [("Best per traversal", headers("traversal"), best_by(lambda r: str(g(r).get("traversal")))),
                ("Best per blocking", headers("traversal mc/nc/kc pack"), best_by(lambda r: (
                    f"{g(r).get('traversal')} {g(r).get('mc')}/{g(r).get('nc')}/{g(r).get('kc')} "
                    f"{g(r).get('pack_bytes') or 'unbounded'}"))),
                *([("The analytical model's blocking beside the best measured (same shape, core and tile)",
                    ["M x N x K", "core", "tile", "model's mc/nc/kc", "model's blocking (GFLOP/s)", "best blocking",
                     "regret"], model_rows)] if model_rows else [])]

    def table(self, records: list[Record]) -> str:
        return gemm_table(records)


def _model_blocking_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Per shape, core (a table row: its cited caches) and register tile, the model's kc/mc/nc as run
    (clipped to the matrix), its best measurement if a record ran it, the best blocking measured and the
    model's regret against it."""
    groups: dict[tuple, list[tuple[dict[str, Any], GemmSpec]]] = {}
    for r in records:  # best first
        try:
            spec = GemmSpec.from_dict(r.get("gemm") or {})
        except SpecError:
            continue
        if r.get("gflops") and spec.threads == 1 and spec.dtype in ("f32", "f64"):
            groups.setdefault((r.get("target_cpu"), spec.m, spec.n, spec.k, spec.dtype, spec.mr, spec.nr), []).append(
                (r, spec))
    rows = []
    for (cpu, m, n, k, dtype, mr, nr), found in groups.items():
        row = next((t for t in TARGETS.values() if t.cpu == cpu and t.fma is not None), None)
        if row is None or found[0][1].kernel.scalable is not None:
            continue
        try:
            chosen = model.blocking(row, dtype, mr, nr)
        except model.NoModel:
            continue
        modelled = dataclasses.replace(found[0][1], traversal=DEFAULT_TRAVERSAL, mc=chosen.mc, nc=chosen.nc,
                                       pack_bytes=None, kernel=dataclasses.replace(found[0][1].kernel, kc=chosen.kc))
        ran = next((r for r, spec in found if spec.traversal == DEFAULT_TRAVERSAL and spec.pack_bytes is None
                    and spec.blocks == modelled.blocks), None)
        best, best_spec = found[0]
        regret = "-" if ran is None else f"{100 * (1 - ran['gflops'] / best['gflops']):.1f}%"
        rows.append([f"{m}x{n}x{k}", cpu, f"{mr}x{nr} {dtype}", "/".join(map(str, modelled.blocks)),
                     "not measured" if ran is None else f"{ran['gflops']:.2f}",
                     f"{best_spec.traversal} {'/'.join(map(str, best_spec.blocks))}: {best['gflops']:.2f}", regret])
    return rows


@lru_cache(maxsize=None)
def _skipped(why: str) -> None:
    """Say once per process that a baseline is left out, and why."""
    print(f"baseline skipped: {why}", file=sys.stderr)


GEMM = register(GemmKind())
