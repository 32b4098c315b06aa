"""`split_accumulators`: two sets of accumulators over alternate k-steps, summed after the k loop.

A tile with fewer C vectors than FMA latency x pipes cannot keep the FMA units busy: each C
vector is one dependence chain through the unrolled k loop. 6x16 f32 in zmm has 6 chains, and a
core with two 512-bit FMA units at latency 4 needs 8. Splitting every chain into its even and
odd k-steps doubles the independent chains (and the registers they take); the two partial sums
are added once per call, after the loop. The sum is reassociated, which the error bound allows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects import arith, scf

from .errors import StepFailed, StrategyError
from .knobs import Knob, Point
from .plan import Plan, StepContext
from .rewrites import clone_ops
from .step import PythonRewrite, register_step, single_k_loop


def _next_value(value: ir.Value, body: ir.Block) -> ir.Value | None:
    """The next value of `value`'s type that its k-step produces from it (following uses inside `body`):
    for a 2-D accumulator, the vector rebuilt from the row FMAs; for a 1-D one, the FMA itself."""
    frontier, seen, found = [value], set(), []
    while frontier:
        for use in frontier.pop().uses:
            op = use.owner.operation
            if op.parent != body.owner or op.name == "scf.yield" or op in seen:
                continue
            seen.add(op)
            for result in op.results:
                (found if result.type == value.type else frontier).append(result)
    return found[0] if len(found) == 1 else None


def _chain(start: ir.Value, body: ir.Block) -> list[ir.Value]:
    """The accumulator's value after each k-step of the loop body, in order."""
    chain, value = [], start
    while (value := _next_value(value, body)) is not None:
        chain.append(value)
    return chain


def _longest_chain(loop: ir.Operation) -> int:
    body = loop.regions[0].blocks[0]
    return max((len(_chain(arg, body)) for arg in list(body.arguments)[1:]), default=0)


def split(loop: ir.Operation) -> int:
    """Rebuild `loop` with a second accumulator for every accumulator that takes two or more k-steps:
    k-step j reads and writes set j % 2. Returns how many accumulators were split."""
    body = loop.regions[0].blocks[0]
    iv, carried = body.arguments[0], list(body.arguments)[1:]
    yield_op = [op.operation for op in body.operations][-1]
    chains = {i: chain for i, chain in enumerate(_chain(arg, body) for arg in carried)
              if len(chain) >= 2 and chain[-1] == yield_op.operands[i]}
    if not chains:
        raise StepFailed("split_accumulators: no accumulator takes two k-steps in the loop (unroll_k first)")
    step_of = {value: (i, j) for i, chain in chains.items() for j, value in enumerate(chain)}
    ops = [op.operation for op in body.operations][:-1]
    with ir.InsertionPoint(loop), loop.location:
        zeros = [arith.constant(carried[i].type, ir.DenseElementsAttr.get_splat(
            carried[i].type, ir.FloatAttr.get(ir.VectorType(carried[i].type).element_type, 0.0))) for i in chains]
        lower, upper, step, *inits = list(loop.operands)
        new_loop = scf.ForOp(lower, upper, step, inits + zeros)
    new_args = list(new_loop.inner_iter_args)
    mapping = {iv: new_loop.induction_variable, **dict(zip(carried, new_args))}
    current = {i: [new_args[i], new_args[len(carried) + k]] for k, i in enumerate(chains)}  # [even, odd]

    def alternate(old: ir.Value, fresh: ir.Value) -> None:
        if old in step_of:  # k-step j wrote set j % 2; k-step j + 1 reads the other set
            i, j = step_of[old]
            current[i][j % 2] = fresh
            mapping[old] = current[i][(j + 1) % 2]

    with ir.InsertionPoint(new_loop.body), loop.location:
        clone_ops(ops, mapping, alternate)
        yields = [current[i][0] if i in chains else mapping.get(v, v) for i, v in enumerate(yield_op.operands)]
        scf.YieldOp(yields + [current[i][1] for i in chains])
    with ir.InsertionPoint(loop), loop.location:
        results = list(new_loop.results)
        merged = {i: arith.addf(results[i], results[len(carried) + k]) for k, i in enumerate(chains)}
    for i, old in enumerate(loop.results):
        old.replace_all_uses_with(merged.get(i, results[i]))
    loop.erase()
    return len(chains)


@register_step
@dataclass(frozen=True)
class SplitAccumulators(PythonRewrite):
    """Alternate k-steps accumulate into a second set of registers; the sets are added after the loop."""

    kind: ClassVar[str] = "split_accumulators"
    scalable_why: ClassVar[str] = "its rewrite finds fixed-width accumulator chains, which a scalable k loop does not have"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop", "lowered"})
    not_after: ClassVar[frozenset[str]] = frozenset({"split_accumulators", "pipeline", "schedule", "prefetch"})
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("split_accumulators", False, (False, True), off=False),)
    sweep_rank: ClassVar[int | None] = 95

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return "split"

    @classmethod
    def accumulator_copies(cls, p: Point) -> int:
        return 2

    def validate(self, plan: Plan) -> None:
        if plan.k_per_iteration < 2:
            raise StrategyError("k_loop: one k-step per iteration, nothing to split (unroll_k before it)")
        if plan.k_trips < 2:
            raise StrategyError(f"k_loop: {plan.k_trips} iteration only, no loop left to carry two sets")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        loop = single_k_loop(kernel)
        before, longest_before = len(list(loop.operands)) - 3, _longest_chain(loop)
        count = split(loop)
        after = single_k_loop(kernel)
        if len(list(after.operands)) - 3 != before + count or _longest_chain(after) > -(-longest_before // 2):
            raise StepFailed("split_accumulators: the loop does not carry two half-length chains per accumulator")
        return f"{count} accumulators split into even and odd k-steps"
