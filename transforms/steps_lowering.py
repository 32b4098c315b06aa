"""Built-in steps that lower the vector contraction: hoist the accumulators, lower the contraction and the
transfers to 1-D vector code (upstream transform ops)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects.transform import loop, structured
from mlir.dialects.transform import memref as tmemref
from mlir.dialects.transform import vector as tvec

from . import ir_query as q
from .errors import StepFailed
from .knobs import Knob, Point
from .plan import Plan, StepContext
from .script import any_op, apply_patterns, canonicalize
from .step import Step, mark_lowered, register_step


@register_step
@dataclass(frozen=True)
class HoistAccumulators(Step):
    """Keep C in registers across the k loop: its transfer_read/write pair moves out of the loop."""

    kind: ClassVar[str] = "hoist_accumulators"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
    needs: ClassVar[frozenset[str]] = frozenset({"vector", "k_loop"})
    #: Hoisting moves C's transfer_read/write pair: once transfers are lowered (to loads and stores)
    #: there is no pair left to move (found by the property test: the order used to fail at build time).
    not_after: ClassVar[frozenset[str]] = frozenset({"unroll_k", "hoist_accumulators", "lower_transfers"})
    sweep_rank: ClassVar[int | None] = 40

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        # Canonicalization folds the full-size subview of C, which hoisting refuses to look through;
        # after 'tile_registers' each piece's C is a partial subview, which only alias folding removes.
        if ctx.spec.group > 1:
            apply_patterns(kernel, canonicalize, tmemref.ApplyFoldMemrefAliasOpsPatternsOp)
        else:
            apply_patterns(kernel, canonicalize)
        structured.HoistRedundantVectorTransfersOp(any_op(), kernel, verify_non_zero_trip=True)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        stores = [op for op in q.walk(kernel) if op.name in ("vector.transfer_write", "vector.store")
                  and q.inside_loop(op)]
        if stores:
            raise StepFailed("hoist_accumulators: C is still stored inside the k loop")


@register_step
@dataclass(frozen=True)
class LowerContraction(Step):
    """Lower vector.contract with one of upstream's strategies (outerproduct gives broadcast + FMA)."""

    kind: ClassVar[str] = "lower_contraction"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
    needs: ClassVar[frozenset[str]] = frozenset({"contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"contract"})
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "lowering": ("outerproduct", "dot", "matmulintrinsics", "parallelarith")}
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("lowering", "outerproduct", choices["lowering"], field="lowering"),)
    sweep_rank: ClassVar[int | None] = 50
    lowering: str = "outerproduct"

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return None if p["lowering"] == cls.lowering else p["lowering"]

    def after(self, plan: Plan) -> Plan:
        return mark_lowered(super().after(plan))

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        strategy = {"outerproduct": tvec.VectorContractLowering.OuterProduct,
                    "dot": tvec.VectorContractLowering.Dot,
                    "matmulintrinsics": tvec.VectorContractLowering.LLVMIntr,
                    "parallelarith": tvec.VectorContractLowering.ParallelArith}[self.lowering]
        apply_patterns(kernel,
                       lambda: tvec.apply_patterns_vector_lower_contraction(lowering_strategy=strategy),
                       tvec.apply_patterns_vector_lower_outerproduct,
                       canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if q.ops_named(kernel, "vector.contract"):
            raise StepFailed(f"lower_contraction: vector.contract remains after '{self.lowering}'")


@register_step
@dataclass(frozen=True)
class LowerTransfers(Step):
    """Turn n-D transfers into 1-D vector loads/stores the LLVM lowering maps to plain loads."""

    kind: ClassVar[str] = "lower_transfers"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve"})
    scalable_why: ClassVar[str] = ("it keeps C's [m]x[n] transfers, which the SME lowering turns into ZA tile loads and stores")
    needs: ClassVar[frozenset[str]] = frozenset({"vector"})
    adds: ClassVar[frozenset[str]] = frozenset({"transfers_lowered"})
    sweep_rank: ClassVar[int | None] = 60

    def after(self, plan: Plan) -> Plan:
        return mark_lowered(super().after(plan))

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        apply_patterns(kernel,
                       tvec.apply_patterns_vector_transfer_permutation_patterns,
                       lambda: tvec.apply_patterns_vector_lower_transfer(max_transfer_rank=1),
                       lambda: tvec.apply_patterns_vector_transfer_to_scf(max_transfer_rank=1, full_unroll=True),
                       canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        for op in q.walk(kernel):
            if op.name in ("vector.transfer_read", "vector.transfer_write"):
                shaped = op.results[0].type if op.name == "vector.transfer_read" else op.operands[0].type
                if ir.VectorType(shaped).rank > 1:
                    raise StepFailed("lower_transfers: a transfer of rank > 1 remains")
