"""Strategy steps: small frozen, serializable records, each rewriting the kernel's IR one way.

A step declares the IR facts it needs and changes (so a strategy in an impossible order is
rejected before compiling), applies itself with upstream transform-dialect ops where upstream
has them (Python rewrites otherwise), and then checks that the IR has the property it promises:
upstream transforms can fail silently.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from mlir import ir
from mlir.dialects.transform import gpu as tgpu
from mlir.dialects.transform import loop, structured
from mlir.dialects.transform import memref as tmemref
from mlir.dialects.transform import vector as tvec

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .knobs import Knob, Point
from .pipelining import software_pipeline
from .plan import MIN_VECTOR_BITS, Plan, StepContext
from .prefetch import insert_prefetches
from .rewrites import defer_accumulator_reads, scalarize_extracted_loads
from .schedule import POLICIES, schedule_block
from .script import any_op, apply_patterns, canonicalize, match, run_script

#: IR facts a step can need or change, with the hint shown when one is missing.
FACT_HINTS = {
    "linalg": "the linalg contraction (before 'vectorize')",
    "k_loop": "a k loop ('tile_k' before it, and no 'unroll_k' with factor \"total\")",
    "vector": "vectorized code ('vectorize' before it)",
    "contract": "a vector.contract ('vectorize' before it, 'lower_contraction' after it)",
    "lowered": "1-D vector code ('lower_contraction' and 'lower_transfers' before it)",
}


@dataclass(frozen=True)
class Step:
    """Base of all steps. Subclasses set `kind` and the fact sets, and implement `emit` or `rewrite`."""

    kind: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    adds: ClassVar[frozenset[str]] = frozenset()
    removes: ClassVar[frozenset[str]] = frozenset()
    #: Steps that, once applied, make this one impossible (e.g. hoisting after unrolling).
    not_after: ClassVar[frozenset[str]] = frozenset()
    #: Allowed values of string fields.
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Sweep knobs setting this step (transforms.knobs); a knob without a field switches the step.
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: Place in a strategy generated from a sweep point (steps in rank order); None: never generated.
    sweep_rank: ClassVar[int | None] = None

    @classmethod
    def from_point(cls, p: Point) -> "Step | None":
        """This step as a sweep point sets it, or None when the point leaves it out."""
        if cls.sweep_rank is None or any(k.off is not None and p[k.name] == k.off for k in cls.knobs):
            return None
        return cls(**{k.field: p[k.name] for k in cls.knobs if k.field is not None})

    @classmethod
    def point_of(cls, step: dict[str, Any] | None) -> Point:
        """The knob values a stored step (its JSON, or None when absent) stands for: for reports."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        values = {}
        for k in cls.knobs:
            if step is None:
                values[k.name] = k.off if k.off is not None else k.default
            else:
                values[k.name] = True if k.field is None else step.get(k.field, defaults[k.field])
        return values

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        """What this step adds to a generated strategy's name (None: nothing)."""
        return None

    @classmethod
    def accumulator_copies(cls, p: Point) -> int:
        """How many registers each C vector takes once this step is applied (for register budgets)."""
        return 1

    def validate(self, plan: Plan) -> None:
        """Reject field values that cannot work at this point; the message starts with the field."""

    def after(self, plan: Plan) -> Plan:
        return plan.with_(facts=(plan.facts - self.removes) | self.adds, applied=plan.applied + (self.kind,))

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        """Rewrite `module` in place and check the promise; returns what was run (for stage dumps)."""
        script = run_script(module, lambda kernel: self.emit(kernel, ctx))
        self.check(q.kernel_function(module), ctx)
        return script

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        raise NotImplementedError

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        """Raise StepFailed when the IR lacks the property this step promises."""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.kind, **dataclasses.asdict(self)}


class PythonRewrite(Step):
    """A step implemented as a Python IR rewrite of the kernel function."""

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        raise NotImplementedError

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        with module.context, ir.Location.unknown():
            summary = self.rewrite(q.kernel_function(module), ctx)
        self.check(q.kernel_function(module), ctx)
        return f"// python rewrite {self.kind}: {summary}"


def _mark_lowered(plan: Plan) -> Plan:
    """Contractions and transfers both lowered, in either order: the IR is plain 1-D vector code."""
    if "contract" not in plan.facts and "transfers_lowered" in plan.facts:
        return plan.with_(facts=plan.facts | {"lowered"})
    return plan


def single_k_loop(kernel: ir.Operation) -> ir.Operation:
    loops = q.ops_named(kernel, "scf.for")
    if len(loops) != 1:
        raise StepFailed(f"expected one k loop, found {len(loops)}")
    return loops[0]


@dataclass(frozen=True)
class TileK(Step):
    """Tile the reduction dimension: an scf.for over k whose body is a size x mr x nr contraction."""

    kind: ClassVar[str] = "tile_k"
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

    def after(self, plan: Plan) -> Plan:
        return super().after(plan).with_(k_per_iteration=self.size)

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        group = ctx.spec.group  # a grouped kernel's k is (ko, v): the loop steps over groups
        sizes = [0, 0, self.size] if group == 1 else [0, 0, self.size // group, 0]
        structured.TileUsingForOp(match(kernel, "linalg.generic"), sizes=sizes)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        single_k_loop(kernel)


@dataclass(frozen=True)
class Vectorize(Step):
    """Vectorize the (tiled) contraction: vector.transfer_read/contract/transfer_write."""

    kind: ClassVar[str] = "vectorize"
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"vector", "contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"linalg"})
    sweep_rank: ClassVar[int | None] = 20

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        vectorized = structured.VectorizeChildrenAndApplyPatternsOp(kernel).result
        apply_patterns(vectorized, canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if any(op.name.startswith("linalg.") for op in q.walk(kernel)):
            raise StepFailed("vectorize: linalg ops remain (dynamic shapes do not vectorize)")


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


@dataclass(frozen=True)
class HoistAccumulators(Step):
    """Keep C in registers across the k loop: its transfer_read/write pair moves out of the loop."""

    kind: ClassVar[str] = "hoist_accumulators"
    needs: ClassVar[frozenset[str]] = frozenset({"vector", "k_loop"})
    not_after: ClassVar[frozenset[str]] = frozenset({"unroll_k", "hoist_accumulators"})
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


@dataclass(frozen=True)
class LowerContraction(Step):
    """Lower vector.contract with one of upstream's strategies (outerproduct gives broadcast + FMA)."""

    kind: ClassVar[str] = "lower_contraction"
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
        return _mark_lowered(super().after(plan))

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


@dataclass(frozen=True)
class LowerTransfers(Step):
    """Turn n-D transfers into 1-D vector loads/stores the LLVM lowering maps to plain loads."""

    kind: ClassVar[str] = "lower_transfers"
    needs: ClassVar[frozenset[str]] = frozenset({"vector"})
    adds: ClassVar[frozenset[str]] = frozenset({"transfers_lowered"})
    sweep_rank: ClassVar[int | None] = 60

    def after(self, plan: Plan) -> Plan:
        return _mark_lowered(super().after(plan))

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


@dataclass(frozen=True)
class ScalarLoads(PythonRewrite):
    """Replace lanes extracted from a vector load by scalar loads.

    The A panel is read as one vector<mr> whose lanes are then broadcast. On x86 a broadcast
    from memory (vbroadcastss) is a pure load, while extracting lanes costs shuffles on the FP
    pipes the FMAs need; on NEON the lane-indexed fmla prefers the vector load. Upstream's
    sink_mem_ops folds only single-use loads, so this is a Python rewrite.
    """

    kind: ClassVar[str] = "scalar_loads"
    needs: ClassVar[frozenset[str]] = frozenset({"vector"})
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("scalar_loads", True, (False, True), off=False),)
    sweep_rank: ClassVar[int | None] = 70

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return "sl"

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        return f"{scalarize_extracted_loads(kernel)} vector loads scalarized"

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
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
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("unroll", 4, words=("total",), field="factor", off=1),)
    sweep_rank: ClassVar[int | None] = 90
    factor: int | str = 2

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return f"u{p['unroll']}"

    @property
    def total(self) -> bool:
        return self.factor == "total"

    def validate(self, plan: Plan) -> None:
        if isinstance(self.factor, str) and not self.total or isinstance(self.factor, int) and self.factor < 2:
            raise StrategyError(f"factor: must be an integer >= 2 or \"total\", got {self.factor!r}")
        if not self.total and plan.k_trips % self.factor:
            raise StrategyError(f"factor: {self.factor} does not divide the k loop's {plan.k_trips} iterations "
                                f"(kc={plan.spec.kc}, {plan.k_per_iteration} k per iteration)")

    def after(self, plan: Plan) -> Plan:
        after = super().after(plan)
        if self.total:
            return after.with_(facts=after.facts - {"k_loop"}, k_per_iteration=plan.spec.kc)
        return after.with_(k_per_iteration=plan.k_per_iteration * self.factor)

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        trips = q.trip_count(single_k_loop(q.kernel_function(module)))
        factor = trips if self.total else self.factor
        if trips is None or trips % factor:
            raise StepFailed(f"unroll_k: factor {factor} does not divide the k loop's {trips} iterations")
        script = run_script(module, lambda kernel: loop.LoopUnrollOp(match(kernel, "scf.for"), factor=factor))
        self.check(q.kernel_function(module), ctx)
        return script

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if self.total and q.ops_named(kernel, "scf.for"):
            raise StepFailed("unroll_k: a loop remains after total unrolling")


@dataclass(frozen=True)
class Schedule(PythonRewrite):
    """Reorder independent ops of the k-loop body (the whole kernel after total unroll).

    Every def-use order and every order between a write and another memory access is kept.
    Policies: as-built; loads-first; interleave (each load `distance` FMAs before its first
    use); random (a valid topological order drawn from `seed`).
    """

    kind: ClassVar[str] = "schedule"
    needs: ClassVar[frozenset[str]] = frozenset({"lowered"})
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"policy": POLICIES}
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob("schedule", "as-built", POLICIES, field="policy", off="as-built"),
        Knob("schedule_distance", 2, minimum=0, maximum=64, field="distance",
             applies=lambda p: p["schedule"] == "interleave", effect=False),
        Knob("schedule_seed", 0, minimum=0, maximum=1 << 31, field="seed",
             applies=lambda p: p["schedule"] == "random", effect=False))
    sweep_rank: ClassVar[int | None] = 110
    policy: str = "as-built"
    distance: int = 2
    seed: int = 0

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return {"loads-first": "lf", "interleave": f"il{p['schedule_distance']}",
                "random": f"rnd{p['schedule_seed']}"}[p["schedule"]]

    def validate(self, plan: Plan) -> None:
        if self.distance < 0:
            raise StrategyError(f"distance: must be >= 0, got {self.distance}")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        loops = q.ops_named(kernel, "scf.for")
        block = loops[0].regions[0].blocks[0] if loops else kernel.regions[0].blocks[0]
        moved = schedule_block(block, self.policy, distance=self.distance, seed=self.seed)
        return f"policy {self.policy}: {moved} ops moved"


@dataclass(frozen=True)
class Prefetch(PythonRewrite):
    """memref.prefetch for the A and B panels `distance` k-steps ahead, and for C before the loop."""

    kind: ClassVar[str] = "prefetch"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop", "lowered"})
    not_after: ClassVar[frozenset[str]] = frozenset({"prefetch"})
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob("prefetch", 0, minimum=0, maximum=1024, field="distance", off=0),
        Knob("prefetch_locality", 3, (0, 1, 2, 3), field="locality", applies=lambda p: p["prefetch"] != 0,
             effect=False))
    sweep_rank: ClassVar[int | None] = 120
    distance: int = 8
    locality: int = 3
    c: bool = True

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return f"pf{p['prefetch']}l{p['prefetch_locality']}"

    def validate(self, plan: Plan) -> None:
        if self.distance < 1:
            raise StrategyError(f"distance: must be >= 1 k-step, got {self.distance}")
        if plan.k_trips < 2:
            raise StrategyError(f"distance: the k loop has {plan.k_trips} iteration only, nothing to prefetch ahead of")
        if not 0 <= self.locality <= 3:
            raise StrategyError(f"locality: must be 0, 1, 2 or 3, got {self.locality}")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        count = insert_prefetches(kernel, single_k_loop(kernel), self.distance, self.locality, self.c)
        return f"{count} prefetches"

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if not q.ops_named(single_k_loop(kernel), "memref.prefetch"):
            raise StepFailed("prefetch: no prefetch inside the k loop")


@dataclass(frozen=True)
class Pipeline(PythonRewrite):
    """Software-pipeline the k loop: the loads of iteration i + stages - 1 are issued in iteration i.

    Upstream transform.loop.pipeline targets transfer ops feeding GPU shared-memory copies and
    fails silently on this loop shape, so this is a Python rewrite: a prologue issues the first
    loads, the loop carries loaded values in iter_args, an epilogue finishes the last iterations.
    """

    kind: ClassVar[str] = "pipeline"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop", "lowered"})
    not_after: ClassVar[frozenset[str]] = frozenset({"pipeline", "prefetch", "schedule"})
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"carry": ("iteration", "first-step")}
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob("pipeline", 0, (0, 2, 3, 4), field="stages", off=0),
        Knob("pipeline_carry", "iteration", choices["carry"], field="carry", applies=lambda p: p["pipeline"] != 0,
             effect=False))
    sweep_rank: ClassVar[int | None] = 100
    stages: int = 2

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return f"pipe{p['pipeline']}" + ("f" if p["pipeline_carry"] == "first-step" else "")
    #: What is loaded ahead: the next iteration's whole body, or (after unrolling) only its first k-step.
    carry: str = "iteration"

    def to_dict(self) -> dict[str, Any]:
        """`carry` is left out at its default, so strategies written before it existed keep their hash."""
        data = super().to_dict()
        if self.carry == "iteration":
            del data["carry"]
        return data

    def validate(self, plan: Plan) -> None:
        if not 2 <= self.stages <= 4:
            raise StrategyError(f"stages: must be between 2 and 4, got {self.stages}")
        if plan.k_trips < self.stages:
            raise StrategyError(f"stages: the k loop has {plan.k_trips} iterations, fewer than {self.stages} stages")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        loop = single_k_loop(kernel)
        trips, inits = q.trip_count(loop), len(list(loop.operands)) - 3
        carried = software_pipeline(loop, self.stages, self.carry == "first-step")
        after = single_k_loop(kernel)
        if q.trip_count(after) != trips - (self.stages - 1) or len(list(after.operands)) - 3 != \
                inits + carried * (self.stages - 1):
            raise StepFailed(f"pipeline: the loop does not run {trips} - {self.stages - 1} iterations carrying "
                             f"{carried} loaded values per stage ahead")
        return f"{self.stages} stages, {carried} loaded values carried"


@dataclass(frozen=True)
class CAfterLoop(PythonRewrite):
    """Accumulate from zero and add C after the k loop (the BLIS order), instead of loading C first.

    The first FMAs then do not wait for C's cache misses; with `prefetch` (c = true) the C tile is
    requested at the start of the call and has the whole loop to arrive.
    """

    kind: ClassVar[str] = "c_after_loop"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    not_after: ClassVar[frozenset[str]] = frozenset({"c_after_loop"})
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("c_after_loop", False, (False, True), off=False),)
    sweep_rank: ClassVar[int | None] = 80

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return "cafter"

    def validate(self, plan: Plan) -> None:
        if plan.k_trips < 2:
            raise StrategyError(f"k_loop: {plan.k_trips} iteration only, nothing to defer C past")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        deferred = defer_accumulator_reads(single_k_loop(kernel))
        if not deferred:
            raise StepFailed("c_after_loop: the k loop carries no accumulator read from C "
                             "(apply hoist_accumulators first)")
        return f"{deferred} accumulator reads moved after the k loop"

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        loop = single_k_loop(kernel)
        for init in list(loop.operands)[3:]:
            owner = init.owner
            if isinstance(init.type, ir.VectorType) and (isinstance(owner, ir.Block) or
                                                         owner.operation.name != "arith.constant"):
                raise StepFailed("c_after_loop: an accumulator still starts from a value read before the loop")


STEP_TYPES: dict[str, type[Step]] = {cls.kind: cls for cls in (
    TileK, Vectorize, Legalize, HoistAccumulators, LowerContraction, LowerTransfers, ScalarLoads, UnrollK,
    Schedule, Prefetch, Pipeline, CAfterLoop)}


#: Comma-separated modules to import before reading strategies; they add steps with register_step.
PLUGINS_ENV = "UKL_PLUGINS"


def register_step(cls: type[Step]) -> type[Step]:
    """Make a step type known to configs and to sweep workers (usable as a class decorator)."""
    STEP_TYPES[cls.kind] = cls
    return cls


def load_plugins() -> None:
    """Import the modules named in $UKL_PLUGINS: experiment-specific steps live outside this package."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StrategyError(f"{PLUGINS_ENV}: cannot import {name!r}: {exc}") from None


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
    ok = not (isinstance(value, bool) and bool not in accepted) and isinstance(value, accepted)
    if not ok:
        names = " or ".join(t.__name__ for t in accepted)
        raise StrategyError(f"{where}: must be {names}, got {value!r}")


# Steps in modules of their own register themselves when imported (after the registry exists).
from . import dot_product, split_accumulators  # noqa: E402,F401
