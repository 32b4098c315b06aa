"""Kind `small_gemm`: small and batched GEMMs, shape-specialized (kernels_mlir.small_gemm), timed
per call against numpy.matmul, cblas (from Python and from a native loop) and ONNX Runtime's MatMul.

Its [small_gemm] section lists shapes as [M, N, K] or [B, M, N, K], the batch layout ("flat":
[B, M, K] x [K, N], as ONNX Runtime flattens it; "batched": [B, M, K] x [B, K, N]), and `scratch`
("none", "malloc", or both as a list: the seed's before and after, one malloc/free pair per call) and
`weights` ("rows", "packed", or both: B as a library's constant weight, packed once and not timed) and
`sizes` ("static", "dynamic", or both: every dimension a constant, or read at run time; not with packed B).
The register tile is the strategy's mr x nr; its kc and steps do not apply (nothing is packed).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from mlir import ir

from kernels_mlir.operands import Operands
from kernels_mlir.small_gemm import LAYOUTS, SCRATCH, SIZES, SMALL_GEMM, WEIGHTS, SmallGemmSpec, build_small_gemm
from kernels_mlir.spec import SpecError
from pipelines.codegen import generate
from pipelines.compile import fma_width, limit_vector_width, strategy_lanes, strategy_width
from pipelines.lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.knobs import Point
from transforms.strategy import Strategy

from runner.cli.output import small_gemm_table
from runner.config.fields import MAX_SHAPES, fits_in_memory, known, typed
from runner.kinds.base import Compiled, ProblemKind, ratio_cell, register
from runner.measure.baselines import Baseline
from runner.measure.record import Record

SECTION_KEYS = {"shapes", "layout", "scratch", "weights", "sizes"}


@dataclass(frozen=True)
class SmallGemmSettings:
    #: (B, M, N, K) of each shape.
    shapes: tuple[tuple[int, int, int, int], ...]
    layout: str = "flat"
    scratch: tuple[str, ...] = ("none",)
    weights: tuple[str, ...] = ("rows",)
    sizes: tuple[str, ...] = ("static",)


def _shapes(raw: Any) -> tuple[tuple[int, int, int, int], ...]:
    if not isinstance(raw, list) or not raw or not all(
            isinstance(s, list) and len(s) in (3, 4) and all(isinstance(d, int) and not isinstance(d, bool) for d in s)
            for s in raw):
        raise StrategyError(f"small_gemm.shapes: must be a list of [M, N, K] or [B, M, N, K] integer lists, "
                            f"got {raw!r}")
    if len(raw) > MAX_SHAPES:
        raise StrategyError(f"small_gemm.shapes: {len(raw)} shapes; at most {MAX_SHAPES}")
    return tuple(tuple(s) if len(s) == 4 else (1, *s) for s in raw)


def _words(table: dict[str, Any], key: str, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """A word of `allowed` or a non-empty list of them (without repeats)."""
    value = table.get(key, list(default))
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v in allowed for v in values) \
            or len(set(values)) != len(values):
        raise StrategyError(f"small_gemm.{key}: must be one of {list(allowed)} or a list of them, got {value!r}")
    return tuple(values)


class SmallGemmKind(ProblemKind):
    name = "small_gemm"
    section = "small_gemm"
    plots = ("baselines", "knob_effects")
    per_call = True
    emulated = False  # its entry takes A, B and C only: the qemu drivers call a micro-kernel or a share

    def read_section(self, table: dict[str, Any], strategies: tuple[Strategy, ...]) -> SmallGemmSettings:
        known(table, SECTION_KEYS, "small_gemm.")
        layout = typed(table, "layout", str, "small_gemm.", "flat")
        if layout not in LAYOUTS:
            raise StrategyError(f"small_gemm.layout: must be one of {list(LAYOUTS)}, got {layout!r}")
        settings = SmallGemmSettings(_shapes(table.get("shapes")), layout, _words(table, "scratch", SCRATCH, ("none",)),
                                     _words(table, "weights", WEIGHTS, ("rows",)), _words(table, "sizes", SIZES, ("static",)))
        for strategy in strategies:
            for p in self.problems(settings, strategy):
                fits_in_memory(p.bytes_needed, f"small_gemm.shapes {[p.batch, p.m, p.n, p.k]}")
        return settings

    def problems(self, settings: SmallGemmSettings, strategy: Strategy, point: Point | None = None) -> list[SmallGemmSpec]:
        k = strategy.kernel
        try:
            return [SmallGemmSpec(m, n, kk, b, settings.layout, k.dtype, k.mr, k.nr, scratch, weights, sizes)
                    for b, m, n, kk in settings.shapes for sizes in settings.sizes for weights in settings.weights
                    for scratch in settings.scratch if not (sizes == "dynamic" and weights == "packed")]
        except SpecError as exc:
            raise StrategyError(f"small_gemm ({strategy.name}).{exc}") from None

    def problems_per_strategy(self, settings: SmallGemmSettings) -> int:
        combinations = [(w, z) for w in settings.weights for z in settings.sizes if not (z == "dynamic" and w == "packed")]
        return len(settings.shapes) * len(settings.scratch) * len(combinations)

    def to_dict(self, problem: SmallGemmSpec) -> dict[str, Any]:
        return problem.to_dict()

    def from_dict(self, data: dict[str, Any]) -> SmallGemmSpec:
        return SmallGemmSpec.from_dict(data)

    def label(self, strategy: Strategy, p: SmallGemmSpec) -> str:
        """strategy[+packed-B][+dynamic][+malloc]@[B x]M x N x K[/batched]."""
        batch = f"{p.batch}x" if p.batch > 1 else ""
        return (f"{self.variant(strategy, p)}@{batch}{p.m}x{p.n}x{p.k}"
                + ("/batched" if p.batch > 1 and p.layout == "batched" else ""))

    def strategy_name(self, label: str) -> str:
        return label.split("@")[0].split("+")[0]

    def variant(self, strategy: Strategy, problem: SmallGemmSpec) -> str:
        """What `ukl compare` pairs across shapes: the strategy, how B comes, and the scratch it allocates."""
        return (strategy.name + ("+packed-B" if problem.weights == "packed" else "")
                + ("+dynamic" if problem.sizes == "dynamic" else "") + ("+malloc" if problem.scratch == "malloc" else ""))

    def identity(self, strategy: Strategy, problem: SmallGemmSpec) -> dict[str, Any]:
        return {"candidate_key": self.key(strategy, problem), self.name: self.to_dict(problem),
                "shape": [problem.batch, problem.m, problem.n, problem.k]}

    def build(self, strategy: Strategy, problem: SmallGemmSpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        k = strategy.kernel
        if (k.mr, k.nr, k.dtype) != (problem.mr, problem.nr, problem.dtype):
            raise StrategyError(f"the strategy's tile is {k.mr}x{k.nr} {k.dtype}, the problem's "
                                f"{problem.mr}x{problem.nr} {problem.dtype}")
        with ir.Context(), ir.Location.unknown():
            module = build_small_gemm(problem, strategy_lanes(strategy, target), target.vector_registers)
            if strategy.vector_bits is not None:
                limit_vector_width(module, strategy_width(strategy, target))
            lower_to_llvm_dialect(module)
            llvm_ir = translate_to_llvm_ir(module)
        if stages is not None:
            stages["llvm-ir"] = llvm_ir
        code = generate(llvm_ir, target, strategy.llvm, jit=target.runs_here if jit is None else jit)
        return Compiled(code, fma_width([code.assembly], strategy, target, SMALL_GEMM))

    def hot_function(self, problem: SmallGemmSpec) -> str:
        return SMALL_GEMM

    def baselines(self, problem: SmallGemmSpec, ops: Operands) -> list[Baseline]:
        """numpy.matmul, cblas from Python and from a native loop, ONNX Runtime's MatMul chain: for f32 and
        f64 (the libraries have no small low-precision GEMM)."""
        from runner.measure.onnxruntime_matmul import ort_matmul
        from runner.measure.small_baselines import cblas_native, cblas_python, numpy_small
        if problem.dtype not in ("f32", "f64"):
            return []
        plain = dataclasses.replace(problem, weights="rows", scratch="none", sizes="static")  # B as libraries take it
        b = problem.logical_b(ops.b)
        return [numpy_small(plain, ops.a, b), cblas_python(plain, ops.a, b), cblas_native(plain, ops.a, b),
                ort_matmul(plain, ops.a)]

    def report_columns(self, records: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
        def per_call(r: dict[str, Any]) -> str:
            flops = 2 * math.prod(r.get("shape") or [0])
            return f"{flops / r['gflops']:.1f}" if r.get("gflops") else "-"
        names = list(dict.fromkeys(b.get("name") for r in records for b in r.get("baselines") or []))
        return [("B x M x N x K", lambda r: "x".join(map(str, r.get("shape") or []))), ("ns/call", per_call),
                *[(f"ours/{name} [95% CI]", lambda r, name=name: ratio_cell(r, name)) for name in names]]

    def table(self, records: list[Record]) -> str:
        return small_gemm_table(records)


SMALL_GEMM_KIND = register(SmallGemmKind())
