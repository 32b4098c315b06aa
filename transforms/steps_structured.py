"""Built-in steps on the linalg contraction: tile k, vectorize, legalize to native vector shapes (upstream
transform ops)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects.transform import gpu as tgpu
from mlir.dialects.transform import loop, structured
from mlir.dialects.transform import memref as tmemref
from mlir.dialects.transform import vector as tvec

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .knobs import Knob, Point
from .plan import MIN_VECTOR_BITS, Plan, StepContext
from .script import apply_patterns, canonicalize, match
from .step import Step, register_step, single_k_loop


@register_step
@dataclass(frozen=True)
class TileK(Step):
    """Tile the reduction dimension: an scf.for over k whose body is a size x mr x nr contraction."""

    kind: ClassVar[str] = "tile_k"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    not_after: ClassVar[frozenset[str]] = frozenset({"tile_k"})
    sweep_rank: ClassVar[int | None] = 10
    size: int = 1

    def validate(self, plan: Plan) -> None:
        if self.size < 1 or plan.spec.kc % self.size:
            raise StrategyError(f"size: must be a positive divisor of kc={plan.spec.kc}, got {self.size}")
        if self.size % plan.spec.group:
            raise StrategyError(f"size: must be a multiple of the kernel's k group ({plan.spec.group} for "
                                f"{plan.spec.dtype}): one k-step is one group, got {self.size}")
        ways = plan.spec.outer_product_ways
        if plan.spec.scalable == "sme" and self.size % ways:
            raise StrategyError(f"size: an SME {plan.spec.dtype} outer product takes {ways} k values at once "
                                f"(the fusion merges {ways} per instruction), so size must be a multiple of {ways}, "
                                f"got {self.size}")

    def after(self, plan: Plan) -> Plan:
        return super().after(plan).with_(k_per_iteration=self.size)

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        group = ctx.spec.group  # a grouped kernel's k is (ko, v): the loop steps over groups
        sizes = [0, 0, self.size] if group == 1 else [0, 0, self.size // group, 0]
        structured.TileUsingForOp(match(kernel, "linalg.generic"), sizes=sizes)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        single_k_loop(kernel)


@register_step
@dataclass(frozen=True)
class Vectorize(Step):
    """Vectorize the (tiled) contraction: vector.transfer_read/contract/transfer_write.

    A scalable kernel (SVE, SME) is vectorized with explicit sizes, its scalable dimensions as MLIR's
    [n] (upstream's ArmSVE and ArmSME matmul tests): then the multi-reduction becomes a contract, and
    the masks, all-true since the payload sizes the tile from vscale, fold away with the views."""

    kind: ClassVar[str] = "vectorize"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"vector", "contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"linalg"})
    sweep_rank: ClassVar[int | None] = 20

    def validate(self, plan: Plan) -> None:
        if plan.spec.scalable and "k_loop" not in plan.facts:
            raise StrategyError(f"scalable: a {plan.spec.scalable} kernel is vectorized one k-step at a time: "
                                "'tile_k' before 'vectorize'")

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        if ctx.spec.scalable:
            self._scalable(kernel, ctx)
            return
        vectorized = structured.VectorizeChildrenAndApplyPatternsOp(kernel).result
        apply_patterns(vectorized, canonicalize)

    @staticmethod
    def _scalable(kernel: ir.Value, ctx: StepContext) -> None:
        spec = ctx.spec
        structured.VectorizeOp(match(kernel, "linalg.generic"), [],
                               static_vector_sizes=[spec.mr, spec.nr, ctx.k_per_iteration],
                               scalable_sizes=[spec.scalable == "sme", True, False])
        apply_patterns(kernel, tvec.apply_patterns_vector_lower_masked_transfers,
                       tvec.apply_patterns_vector_transfer_permutation_patterns,
                       tvec.apply_patterns_vector_reduction_to_contract, tvec.apply_patterns_vector_sink_ops)
        apply_patterns(kernel, canonicalize)
        apply_patterns(kernel, tmemref.ApplyFoldMemrefAliasOpsPatternsOp, canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if any(op.name.startswith("linalg.") for op in q.walk(kernel)):
            raise StepFailed("vectorize: linalg ops remain (dynamic shapes do not vectorize)")
        if ctx.spec.scalable and q.ops_named(kernel, "vector.mask"):
            raise StepFailed("vectorize: masked operations remain (the scalable tile's masks did not fold)")


@register_step
@dataclass(frozen=True)
class Legalize(Step):
    """Split every vector to a width the target has, in MLIR, before LLVM sees it.

    Upstream vector unrolling (the patterns behind apply_patterns.gpu.unroll_vectors_subgroup_mma,
    which apply to any vector.contract) cuts the contraction into m_piece x n_piece x 1 pieces:
    B rows and C rows become vector<n_piece>, the widest power of two that divides nr and fits
    the strategy's width (so nr = 8 f32 is legal on AVX-512: ymm pieces); A is read in the
    largest power-of-two pieces (<= lanes) that divide mr. Without this step LLVM legalizes,
    e.g. vector<12xf32> on NEON.
    """

    kind: ClassVar[str] = "legalize"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset()
    scalable_why: ClassVar[str] = ("scalable vectors are legal at every length: LLVM splits [n] vectors into whole registers")
    needs: ClassVar[frozenset[str]] = frozenset({"contract"})
    not_after: ClassVar[frozenset[str]] = frozenset({"hoist_accumulators", "unroll_k"})
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("legalize", False, (False, True), off=False),)
    sweep_rank: ClassVar[int | None] = 30

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return "legal"

    def validate(self, plan: Plan) -> None:
        if plan.spec.mr % 2:
            raise StrategyError(f"mr: legalize needs an even mr, got {plan.spec.mr} (upstream unrolling into "
                                "1-row pieces leaves C's read unsplit, so the accumulators cannot be hoisted)")
        narrowest = MIN_VECTOR_BITS // (8 * plan.spec.itemsize)
        if plan.lanes is not None and self.n_piece(plan.spec.nr, plan.lanes) < narrowest:
            raise StrategyError(f"nr: legalize needs nr to be a multiple of {narrowest} (the narrowest "
                                f"{plan.spec.dtype} vector, {MIN_VECTOR_BITS} bits), got nr={plan.spec.nr}")

    @staticmethod
    def m_piece(mr: int, lanes: int) -> int:
        piece = 1
        while piece * 2 <= lanes and mr % (piece * 2) == 0:
            piece *= 2
        return piece

    @staticmethod
    def n_piece(nr: int, lanes: int) -> int:
        """The widest power of two <= lanes that divides nr."""
        return Legalize.m_piece(nr, lanes)

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        m, n = self.m_piece(ctx.spec.mr, ctx.lanes), self.n_piece(ctx.spec.nr, ctx.lanes)
        apply_patterns(kernel, lambda: tgpu.ApplyUnrollVectorsSubgroupMmaOp(m, n, 1), canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        for vec in q.vector_types(kernel):
            inner = vec.shape[-1]
            if inner > ctx.lanes or inner & (inner - 1):
                raise StepFailed(f"legalize: {vec} is not split to a native width (at most {ctx.lanes} lanes)")
