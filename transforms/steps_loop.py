"""Built-in steps that rewrite the lowered k loop: scalar loads, unrolling, scheduling, prefetches,
software pipelining, C stored after the loop (Python rewrites where upstream has no op)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mlir import ir
from mlir.dialects.transform import loop

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .knobs import Knob, Point
from .pipelining import software_pipeline
from .plan import Plan, StepContext
from .prefetch import insert_prefetches
from .rewrites import defer_accumulator_reads, scalarize_extracted_loads
from .schedule import POLICIES, schedule_block
from .script import match, run_script
from .step import PythonRewrite, Step, register_step, single_k_loop


@register_step
@dataclass(frozen=True)
class ScalarLoads(PythonRewrite):
    """Replace lanes extracted from a vector load by scalar loads.

    The A panel is read as one vector<mr> whose lanes are then broadcast. On x86 a broadcast
    from memory (vbroadcastss) is a pure load, while extracting lanes costs shuffles on the FP
    pipes the FMAs need; on NEON the lane-indexed fmla prefers the vector load. Upstream's
    sink_mem_ops folds only single-use loads, so this is a Python rewrite.
    """

    kind: ClassVar[str] = "scalar_loads"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
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


@register_step
@dataclass(frozen=True)
class UnrollK(Step):
    """Unroll the k loop by a factor, or completely ("total": straight-line code, no loop)."""

    kind: ClassVar[str] = "unroll_k"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve", "sme"})
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


@register_step
@dataclass(frozen=True)
class Schedule(PythonRewrite):
    """Reorder independent ops of the k-loop body (the whole kernel after total unroll).

    Every def-use order and every order between a write and another memory access is kept.
    Policies: as-built; loads-first; interleave (each load `distance` FMAs before its first
    use); random (a valid topological order drawn from `seed`).
    """

    kind: ClassVar[str] = "schedule"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve"})
    scalable_why: ClassVar[str] = ("its k loop is outer products into ZA, with no 1-D vector code to reorder")
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


@register_step
@dataclass(frozen=True)
class Prefetch(PythonRewrite):
    """memref.prefetch for the A and B panels `distance` k-steps ahead, and for C before the loop."""

    kind: ClassVar[str] = "prefetch"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset()
    scalable_why: ClassVar[str] = ("its prefetches cover panel rows of a static width; a scalable kernel's are vscale times wider")
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


@register_step
@dataclass(frozen=True)
class Pipeline(PythonRewrite):
    """Software-pipeline the k loop: the loads of iteration i + stages - 1 are issued in iteration i.

    Upstream transform.loop.pipeline targets transfer ops feeding GPU shared-memory copies and
    fails silently on this loop shape, so this is a Python rewrite: a prologue issues the first
    loads, the loop carries loaded values in iter_args, an epilogue finishes the last iterations.
    """

    kind: ClassVar[str] = "pipeline"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve"})
    scalable_why: ClassVar[str] = ("its k loop is outer products into ZA, with no 1-D vector code to pipeline")
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


@register_step
@dataclass(frozen=True)
class CAfterLoop(PythonRewrite):
    """Accumulate from zero and add C after the k loop (the BLIS order), instead of loading C first.

    The first FMAs then do not wait for C's cache misses; with `prefetch` (c = true) the C tile is
    requested at the start of the call and has the whole loop to arrive.
    """

    kind: ClassVar[str] = "c_after_loop"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve"})
    scalable_why: ClassVar[str] = ("C lives in ZA tiles, loaded and stored by the SME lowering")
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
