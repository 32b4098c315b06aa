"""A problem kind in one module, as a user would add one: `UKL_PLUGINS=tests.runner.axpy_kind`.

`axpy`: y += 0.5 * x over n elements, vectorized at the strategy's width with `vectors` vectors per
loop step and a scalar remainder. Its config section [axpy] lists the sizes; `vectors` is also a
sweep knob. `sabotage = true` builds it with the wrong scale (a candidate only running can catch).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import arith, func, memref, scf, vector

from kernels_mlir.harness import add_bench_loop
from kernels_mlir.mlir_types import element_type, mark_entry_point
from kernels_mlir.operands import Guarded, Operands
from kernels_mlir.reference import draw, verification_bytes
from kernels_mlir.spec import DTYPES, SpecError
from pipelines.codegen import generate
from pipelines.compile import fma_width, strategy_lanes
from pipelines.lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from pipelines.targets import Target
from runner.config.fields import int_list, known, typed
from runner.kinds import Compiled, ProblemKind, problem_knobs, register
from transforms.errors import StrategyError
from transforms.knobs import Knob, Point
from transforms.strategy import Strategy

ALPHA = 0.5
ENTRY, BENCH = "ukl_axpy", "ukl_axpy_bench"


@dataclass(frozen=True)
class AxpySpec:
    n: int
    dtype: str = "f32"
    vectors: int = 1
    sabotage: bool = False

    kind = "axpy"
    entry, bench = ENTRY, BENCH

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= 1 << 24:
            raise SpecError(f"n: must be an integer from 1 to {1 << 24}, got {self.n!r}")
        if self.dtype not in ("f32", "f64"):
            raise SpecError(f"dtype: axpy takes f32 or f64, got {self.dtype!r}")

    @property
    def flops(self) -> int:
        return 2 * self.n

    @property
    def bytes_needed(self) -> int:
        return 2 * (2 * self.n + 2 * 64) * 8 + verification_bytes(self.n, self.n)

    def workload(self) -> dict[str, Any]:
        return {"n": self.n, "dtype": self.dtype}

    def operands(self, seed: int) -> Operands:
        rng = np.random.default_rng(seed)
        element = DTYPES[self.dtype].a
        return Operands({"A": Guarded.around(draw(rng, element, 1, self.n)),
                         "C": Guarded.around(draw(rng, element, 1, self.n))})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        x, y = ops.a.astype(np.float64), ops.c.astype(np.float64)
        eps = np.finfo(DTYPES[self.dtype].numpy).eps
        return y + ALPHA * x, 2 * eps * (np.abs(y) + np.abs(ALPHA * x)) + np.finfo(np.float64).tiny


def build_axpy(spec: AxpySpec, lanes: int) -> ir.Module:
    elt = element_type(DTYPES[spec.dtype].a)
    index = ir.IndexType.get()
    memory = ir.MemRefType.get([1, spec.n], elt)
    vec = ir.VectorType.get([lanes], elt)
    step = lanes * spec.vectors
    whole = spec.n - spec.n % step
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(ENTRY, ir.FunctionType.get([memory, memory], []))
        mark_entry_point(fn, noinline=True)
        with ir.InsertionPoint(fn.add_entry_block()):
            x, y = fn.entry_block.arguments
            c = lambda v: arith.constant(index, v)  # noqa: E731
            alpha = arith.constant(elt, ALPHA / 2 if spec.sabotage else ALPHA)
            zero = c(0)
            loop = scf.ForOp(c(0), c(whole), c(step))
            with ir.InsertionPoint(loop.body):
                for v in range(spec.vectors):
                    i = arith.addi(loop.induction_variable, c(v * lanes))
                    result = vector.fma(vector.broadcast(vec, alpha), vector.load(vec, x, [zero, i]),
                                        vector.load(vec, y, [zero, i]))
                    vector.store(result, y, [zero, i])
                scf.YieldOp([])
            rest = scf.ForOp(c(whole), c(spec.n), c(1))
            with ir.InsertionPoint(rest.body):
                i = rest.induction_variable
                product = arith.mulf(alpha, memref.load(x, [zero, i]))
                memref.store(arith.addf(memref.load(y, [zero, i]), product), y, [zero, i])
                scf.YieldOp([])
            func.ReturnOp([])
    add_bench_loop(module, ENTRY, BENCH)
    return module


@dataclass(frozen=True)
class AxpySettings:
    sizes: tuple[int, ...]
    vectors: int = 1
    sabotage: bool = False


class AxpyKind(ProblemKind):
    name = "axpy"
    section = "axpy"
    knobs = (Knob("vectors", 1, (1, 2, 4)),)

    def read_section(self, table: dict[str, Any], strategies: tuple[Strategy, ...]) -> AxpySettings:
        known(table, {"sizes", "vectors", "sabotage"}, "axpy.")
        settings = AxpySettings(tuple(int_list(table, "sizes", "axpy.")), typed(table, "vectors", int, "axpy.", 1),
                                typed(table, "sabotage", bool, "axpy.", False))
        self.knobs[0].check(settings.vectors, "axpy.")
        for strategy in strategies:
            self.problems(settings, strategy)
        return settings

    def problems(self, settings: AxpySettings, strategy: Strategy, point: Point | None = None) -> list[AxpySpec]:
        vectors = problem_knobs(point or {}, self).get("vectors", settings.vectors)
        try:
            return [AxpySpec(n, strategy.kernel.dtype, vectors, settings.sabotage) for n in settings.sizes]
        except SpecError as exc:
            raise StrategyError(f"axpy ({strategy.name}).{exc}") from None

    def problems_per_strategy(self, settings: AxpySettings) -> int:
        return len(settings.sizes)

    def to_dict(self, problem: AxpySpec) -> dict[str, Any]:
        return asdict(problem)

    def from_dict(self, data: dict[str, Any]) -> AxpySpec:
        return AxpySpec(**data)

    def label(self, strategy: Strategy, problem: AxpySpec) -> str:
        return f"{strategy.name}@n{problem.n}/v{problem.vectors}"

    def strategy_name(self, label: str) -> str:
        return label.split("@")[0]

    def build(self, strategy: Strategy, problem: AxpySpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        with ir.Context(), ir.Location.unknown():
            module = build_axpy(problem, strategy_lanes(strategy, target))
            lower_to_llvm_dialect(module)
            llvm_ir = translate_to_llvm_ir(module)
        code = generate(llvm_ir, target, strategy.llvm, jit=target.runs_here if jit is None else jit)
        return Compiled(code, fma_width([code.assembly], strategy, target, ENTRY))


register(AxpyKind())
