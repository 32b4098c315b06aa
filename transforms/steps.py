"""Strategy steps: small frozen, serializable records, each rewriting the kernel's IR one way.

A step declares the IR facts it needs and changes (so a strategy in an impossible order is
rejected before compiling), applies itself with upstream transform-dialect ops, and then
checks that the IR really has the property it promises.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from mlir import ir
from mlir.dialects.transform import loop, structured
from mlir.dialects.transform import vector as tvec

from kernels_mlir.spec import KernelSpec

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .rewrites import scalarize_extracted_loads
from .script import apply_patterns, canonicalize, match, run_script

#: IR facts a step can need or change, with the hint shown when one is missing.
FACT_HINTS = {
    "linalg": "the linalg contraction (before 'vectorize')",
    "k_loop": "a k loop ('tile_k' before it, and no 'unroll_k' with factor \"total\")",
    "vector": "vectorized code ('vectorize' before it)",
    "contract": "a vector.contract ('vectorize' before it)",
}


@dataclass(frozen=True)
class Step:
    """Base of all steps. Subclasses set `kind` and the fact sets, and implement `emit`."""

    kind: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    adds: ClassVar[frozenset[str]] = frozenset()
    removes: ClassVar[frozenset[str]] = frozenset()
    #: Steps that, once applied, make this one impossible (e.g. hoisting after unrolling).
    not_after: ClassVar[frozenset[str]] = frozenset()
    #: Allowed values of string fields.
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def validate(self, spec: KernelSpec) -> None:
        """Reject values that cannot work for this kernel; default: nothing to check."""

    def facts_after(self, facts: frozenset[str]) -> frozenset[str]:
        return (facts - self.removes) | self.adds

    def apply(self, module: ir.Module) -> str:
        """Rewrite `module` in place, check the promise; returns the transform script used."""
        script = run_script(module, self.emit)
        self.check(q.kernel_function(module))
        return script

    def emit(self, kernel: ir.Value) -> None:
        raise NotImplementedError

    def check(self, kernel: ir.Operation) -> None:
        """Raise StepFailed when the IR lacks the property this step promises."""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class TileK(Step):
    """Tile the reduction dimension: an scf.for over k whose body is a size x mr x nr contraction."""

    kind: ClassVar[str] = "tile_k"
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    not_after: ClassVar[frozenset[str]] = frozenset({"tile_k"})
    size: int = 1

    def validate(self, spec: KernelSpec) -> None:
        if self.size < 1 or spec.kc % self.size:
            raise StrategyError(f"size: must be a positive divisor of kc={spec.kc}, got {self.size}")

    def emit(self, kernel: ir.Value) -> None:
        structured.TileUsingForOp(match(kernel, "linalg.generic"), sizes=[0, 0, self.size])

    def check(self, kernel: ir.Operation) -> None:
        if len(q.ops_named(kernel, "scf.for")) != 1:
            raise StepFailed("tile_k: expected exactly one k loop")


@dataclass(frozen=True)
class Vectorize(Step):
    """Vectorize the (tiled) contraction: vector.transfer_read/contract/transfer_write."""

    kind: ClassVar[str] = "vectorize"
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"vector", "contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"linalg"})

    def emit(self, kernel: ir.Value) -> None:
        vectorized = structured.VectorizeChildrenAndApplyPatternsOp(kernel).result
        apply_patterns(vectorized, canonicalize)

    def check(self, kernel: ir.Operation) -> None:
        if any(op.name.startswith("linalg.") for op in q.walk(kernel)):
            raise StepFailed("vectorize: linalg ops remain (dynamic shapes do not vectorize)")


@dataclass(frozen=True)
class HoistAccumulators(Step):
    """Keep C in registers across the k loop: its transfer_read/write pair moves out of the loop."""

    kind: ClassVar[str] = "hoist_accumulators"
    needs: ClassVar[frozenset[str]] = frozenset({"vector", "k_loop"})
    not_after: ClassVar[frozenset[str]] = frozenset({"unroll_k"})

    def emit(self, kernel: ir.Value) -> None:
        # Canonicalization folds the full-size subview of C, which hoisting refuses to look through.
        apply_patterns(kernel, canonicalize)
        structured.HoistRedundantVectorTransfersOp(_any_op(), kernel, verify_non_zero_trip=True)

    def check(self, kernel: ir.Operation) -> None:
        stores = [op for op in q.walk(kernel) if op.name in ("vector.transfer_write", "vector.store")
                  and q.inside_loop(op)]
        if stores:
            raise StepFailed("hoist_accumulators: C is still stored inside the k loop")


@dataclass(frozen=True)
class LowerContraction(Step):
    """Lower vector.contract with one of upstream's strategies (outerproduct gives broadcast + FMA)."""

    kind: ClassVar[str] = "lower_contraction"
    needs: ClassVar[frozenset[str]] = frozenset({"contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"contract"})
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "lowering": ("outerproduct", "dot", "matmulintrinsics", "parallelarith")}
    lowering: str = "outerproduct"

    def emit(self, kernel: ir.Value) -> None:
        strategy = {"outerproduct": tvec.VectorContractLowering.OuterProduct,
                    "dot": tvec.VectorContractLowering.Dot,
                    "matmulintrinsics": tvec.VectorContractLowering.LLVMIntr,
                    "parallelarith": tvec.VectorContractLowering.ParallelArith}[self.lowering]
        apply_patterns(kernel,
                       lambda: tvec.apply_patterns_vector_lower_contraction(lowering_strategy=strategy),
                       tvec.apply_patterns_vector_lower_outerproduct,
                       canonicalize)

    def check(self, kernel: ir.Operation) -> None:
        if q.ops_named(kernel, "vector.contract"):
            raise StepFailed(f"lower_contraction: vector.contract remains after '{self.lowering}'")


@dataclass(frozen=True)
class LowerTransfers(Step):
    """Turn n-D transfers into 1-D vector loads/stores the LLVM lowering maps to plain loads."""

    kind: ClassVar[str] = "lower_transfers"
    needs: ClassVar[frozenset[str]] = frozenset({"vector"})

    def emit(self, kernel: ir.Value) -> None:
        apply_patterns(kernel,
                       tvec.apply_patterns_vector_transfer_permutation_patterns,
                       lambda: tvec.apply_patterns_vector_lower_transfer(max_transfer_rank=1),
                       lambda: tvec.apply_patterns_vector_transfer_to_scf(max_transfer_rank=1, full_unroll=True),
                       canonicalize)

    def check(self, kernel: ir.Operation) -> None:
        for op in q.walk(kernel):
            if op.name in ("vector.transfer_read", "vector.transfer_write"):
                shaped = op.results[0].type if op.name == "vector.transfer_read" else op.operands[0].type
                if ir.VectorType(shaped).rank > 1:
                    raise StepFailed("lower_transfers: a transfer of rank > 1 remains")


@dataclass(frozen=True)
class ScalarLoads(Step):
    """Replace lanes extracted from a vector load by scalar loads.

    The A panel is read as one vector<mr> whose lanes are then broadcast. On x86 a broadcast
    from memory (vbroadcastss) is a pure load, while extracting lanes costs shuffles on the FP
    pipes the FMAs need; on NEON the lane-indexed fmla prefers the vector load. Upstream's
    sink_mem_ops folds only single-use loads, so this is a Python rewrite.
    """

    kind: ClassVar[str] = "scalar_loads"
    needs: ClassVar[frozenset[str]] = frozenset({"vector"})

    def apply(self, module: ir.Module) -> str:
        with module.context, ir.Location.unknown():
            count = scalarize_extracted_loads(q.kernel_function(module))
        self.check(q.kernel_function(module))
        return f"// python rewrite: scalarize_extracted_loads ({count} vector loads)"

    def check(self, kernel: ir.Operation) -> None:
        for op in q.ops_named(kernel, "vector.extract"):
            source = op.operands[0].owner
            if not isinstance(source, ir.Block) and source.name == "vector.load" and \
                    not isinstance(op.results[0].type, ir.VectorType):
                raise StepFailed("scalar_loads: a scalar is still extracted from a vector load")


@dataclass(frozen=True)
class UnrollK(Step):
    """Unroll the k loop by a factor, or completely ("total": straight-line code, no loop)."""

    kind: ClassVar[str] = "unroll_k"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    factor: int | str = 2

    @property
    def total(self) -> bool:
        return self.factor == "total"

    @property
    def removes(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"k_loop"}) if self.total else frozenset()

    def validate(self, spec: KernelSpec) -> None:
        if isinstance(self.factor, str) and not self.total:
            raise StrategyError(f"factor: must be an integer >= 2 or \"total\", got {self.factor!r}")
        if isinstance(self.factor, int) and self.factor < 2:
            raise StrategyError(f"factor: must be an integer >= 2 or \"total\", got {self.factor}")

    def apply(self, module: ir.Module) -> str:
        (k_loop,) = q.ops_named(q.kernel_function(module), "scf.for")
        trips = q.trip_count(k_loop)
        factor = trips if self.total else self.factor
        if trips is None or trips % factor:
            raise StepFailed(f"unroll_k: factor {factor} does not divide the k loop's {trips} iterations")
        script = run_script(module, lambda kernel: loop.LoopUnrollOp(match(kernel, "scf.for"), factor=factor))
        self.check(q.kernel_function(module))
        return script

    def check(self, kernel: ir.Operation) -> None:
        loops = q.ops_named(kernel, "scf.for")
        if self.total and loops:
            raise StepFailed("unroll_k: a loop remains after total unrolling")


def _any_op() -> ir.Type:
    from mlir.dialects import transform
    return transform.AnyOpType.get()


STEP_TYPES: dict[str, type[Step]] = {cls.kind: cls for cls in
                                     (TileK, Vectorize, HoistAccumulators, LowerContraction, LowerTransfers, ScalarLoads, UnrollK)}


def step_from_config(raw: Any, where: str) -> Step:
    """A step from its TOML/JSON form: "kind" or {step = "kind", field = value, ...}."""
    if isinstance(raw, str):
        raw = {"step": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("step"), str):
        raise StrategyError(f"{where}: a step is a name or a table with a 'step' key, got {raw!r}")
    fields = dict(raw)
    kind = fields.pop("step")
    cls = STEP_TYPES.get(kind)
    if cls is None:
        raise StrategyError(f"{where}: unknown step {kind!r} (known: {', '.join(sorted(STEP_TYPES))})")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name, value in fields.items():
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise StrategyError(f"{where}.{name}: unknown field of step {kind!r} (fields: {allowed})")
        _check_type(value, hints[name], f"{where}.{name}")
        allowed_values = cls.choices.get(name)
        if allowed_values and value not in allowed_values:
            raise StrategyError(f"{where}.{name}: must be one of {list(allowed_values)}, got {value!r}")
    return cls(**fields)


def _check_type(value: Any, annotation: Any, where: str) -> None:
    accepted = typing.get_args(annotation) or (annotation,)
    if isinstance(value, bool) and bool not in accepted:
        ok = False
    else:
        ok = isinstance(value, accepted)
    if not ok:
        names = " or ".join(t.__name__ for t in accepted)
        raise StrategyError(f"{where}: must be {names}, got {value!r}")
