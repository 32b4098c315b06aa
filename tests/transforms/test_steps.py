"""Each step's promise, checked on the IR it produces."""
import re

import pytest
from mlir import ir

from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.spec import KernelSpec
from transforms import ir_query as q
from transforms.apply import apply_strategy
from transforms.errors import StepFailed, StrategyError
from transforms.schedule import is_valid_order, order
from transforms.steps import (CAfterLoop, HoistAccumulators, Pipeline, Prefetch, ScalarLoads, Schedule, TileK, UnrollK,
                              Vectorize)
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from ..conftest import LEGAL

BASE = REGISTER_RESIDENT_STEPS


def transformed(steps, spec=KernelSpec(6, 16, 32)):
    ctx = ir.Context()
    with ctx, ir.Location.unknown():
        module = build_microkernel(spec)
        apply_strategy(module, Strategy("t", spec, steps), lanes=8)
        kernel = q.kernel_function(module)
        return ctx, module, kernel


def test_tile_k_makes_one_loop_over_kc():
    _, _, kernel = transformed((TileK(4),))
    (loop,) = q.ops_named(kernel, "scf.for")
    assert q.trip_count(loop) == 32 // 4


def test_vectorize_leaves_no_linalg_and_a_contraction():
    _, _, kernel = transformed((TileK(1), Vectorize()))
    assert not [op for op in q.walk(kernel) if op.name.startswith("linalg.")]
    assert q.ops_named(kernel, "vector.contract")


def test_hoisting_keeps_accumulators_out_of_the_loop():
    _, _, kernel = transformed((TileK(1), Vectorize(), HoistAccumulators()))
    (loop,) = q.ops_named(kernel, "scf.for")
    assert len(list(loop.results)) == 1  # C travels through iter_args
    assert not [op for op in q.walk(loop) if op.name in ("vector.transfer_write", "vector.store")]


def test_outer_product_lowering_gives_one_fma_per_row():
    _, _, kernel = transformed(BASE)
    assert not q.ops_named(kernel, "vector.contract")
    fmas = q.ops_named(kernel, "vector.fma")
    assert len(fmas) == 6 and all(str(f.results[0].type) == "vector<16xf32>" for f in fmas)


def test_lower_transfers_leaves_only_1d_memory_ops():
    _, _, kernel = transformed(BASE)
    assert not q.ops_named(kernel, "vector.transfer_read")
    assert all(op.results[0].type.rank == 1 for op in q.ops_named(kernel, "vector.load"))


def test_scalar_loads_read_each_a_element_once_per_k_step():
    _, _, kernel = transformed(BASE + (ScalarLoads(),))
    (loop,) = q.ops_named(kernel, "scf.for")
    assert len(q.ops_named(loop, "memref.load")) == 6
    assert [str(op.results[0].type) for op in q.ops_named(loop, "vector.load")] == ["vector<16xf32>"]


@pytest.mark.parametrize("factor", [2, 4])
def test_unroll_by_factor_multiplies_the_body(factor):
    _, _, kernel = transformed(BASE + (UnrollK(factor),))
    (loop,) = q.ops_named(kernel, "scf.for")
    assert q.trip_count(loop) == 32 // factor
    assert len(q.ops_named(loop, "vector.fma")) == 6 * factor


def test_total_unroll_leaves_straight_line_code():
    _, _, kernel = transformed(BASE + (UnrollK("total"),))
    assert not q.ops_named(kernel, "scf.for")
    assert len(q.ops_named(kernel, "vector.fma")) == 6 * 32


def test_same_strategy_gives_identical_ir_every_time():
    texts = {str(transformed(BASE + (ScalarLoads(), UnrollK(4)))[1]) for _ in range(3)}
    assert len(texts) == 1


# --- legalize, schedule, prefetch, pipeline -------------------------------------------------


def _inner_widths(kernel):
    return {v.shape[-1] for v in q.vector_types(kernel)}


@pytest.mark.parametrize("mr,nr,lanes", [(12, 8, 4), (4, 24, 8), (6, 16, 8), (8, 12, 4)])
def test_legalize_leaves_only_native_power_of_two_vectors(mr, nr, lanes):
    spec = KernelSpec(mr, nr, 16)
    with ir.Context(), ir.Location.unknown():
        module = build_microkernel(spec)
        apply_strategy(module, Strategy("t", spec, LEGAL), lanes=lanes)
        widths = _inner_widths(q.kernel_function(module))
    assert widths and all(w <= lanes and w & (w - 1) == 0 for w in widths)


def test_legalize_rejects_odd_mr_up_front():
    with pytest.raises(StrategyError, match=r"steps\[2\] \(legalize\)\.mr: legalize needs an even mr, got 5"):
        Strategy("t", KernelSpec(5, 8, 16), LEGAL)


def test_without_legalize_llvm_gets_the_wide_vector():
    _, _, kernel = transformed(BASE, KernelSpec(4, 24, 16))
    assert 24 in _inner_widths(kernel)


def test_legalize_rejects_nr_not_a_multiple_of_the_narrowest_vector():
    s = Strategy("t", KernelSpec(4, 6, 16), LEGAL)  # fine while the target is unknown
    with pytest.raises(StrategyError, match=r"steps\[2\] \(legalize\)\.nr: .*multiple of 4 \(the narrowest f32 vector"):
        s.validate_for(lanes=16)
    Strategy("t", KernelSpec(4, 8, 16), LEGAL).validate_for(lanes=16)  # 8 f32 on AVX-512: ymm pieces


@pytest.mark.parametrize("mr,nr,lanes,piece", [(12, 8, 16, 8), (4, 24, 16, 8), (6, 16, 16, 16), (4, 12, 16, 4)])
def test_legalize_splits_to_the_widest_power_of_two_that_divides_nr(mr, nr, lanes, piece):
    with ir.Context(), ir.Location.unknown():
        module = build_microkernel(KernelSpec(mr, nr, 16))
        apply_strategy(module, Strategy("t", KernelSpec(mr, nr, 16), LEGAL), lanes=lanes)
        widths = _inner_widths(q.kernel_function(module))
    assert max(widths) == piece and all(w & (w - 1) == 0 for w in widths)


def _loop_body_ops(kernel):
    (loop,) = q.ops_named(kernel, "scf.for")
    return [op.operation for op in loop.regions[0].blocks[0].operations][:-1]


def test_random_schedule_is_reproducible_and_seed_dependent():
    _, _, kernel = transformed(BASE + (ScalarLoads(), UnrollK(2)))
    ops = _loop_body_ops(kernel)
    first, again, other = (order(ops, "random", seed=s) for s in (7, 7, 8))
    assert first == again and first != other
    assert is_valid_order(ops, first) and is_valid_order(ops, other)
    assert not is_valid_order(ops, list(reversed(range(len(ops)))))


def test_loads_first_puts_every_load_before_the_first_fma():
    _, _, kernel = transformed(BASE + (ScalarLoads(), UnrollK(2), Schedule("loads-first")))
    names = [op.name for op in _loop_body_ops(kernel)]
    last_load = max(i for i, n in enumerate(names) if n in ("memref.load", "vector.load"))
    assert last_load < names.index("vector.fma")


def test_interleave_places_loads_near_their_use():
    _, _, kernel = transformed(BASE + (ScalarLoads(), UnrollK(4), Schedule("interleave", distance=2)))
    ops = _loop_body_ops(kernel)
    fmas_before = 0
    for i, op in enumerate(ops):
        if op.name == "vector.fma":
            fmas_before += 1
        elif op.name in ("memref.load", "vector.load") and fmas_before:
            # A load issued mid-stream sits at most `distance` FMAs ahead of its first FMA use.
            consumers = [o for o in ops[i:] if o.name == "vector.fma"]
            uses = [j for j, f in enumerate(consumers) if any(
                (v.owner.operation if not isinstance(v.owner, ir.Block) else None) in
                {op, *[u.owner.operation for u in op.results[0].uses]} for v in f.operands)]
            assert uses and uses[0] <= 2


def test_prefetch_targets_distance_k_steps_ahead():
    _, _, kernel = transformed(BASE + (ScalarLoads(), UnrollK(2), Prefetch(distance=5, locality=1)),
                               KernelSpec(6, 16, 32))
    (loop,) = q.ops_named(kernel, "scf.for")
    prefetches = q.ops_named(loop, "memref.prefetch")
    # A: 2 k-steps x 6 f32 = 48 B -> 1 line; B: 2 x 16 f32 = 128 B -> 2 lines.
    assert len(prefetches) == 3
    offsets = {q.constant_int(p.operands[1].owner.operands[1]) for p in prefetches}
    assert offsets == {5, 6}  # row k+5, and k+6 for B's second k-step
    assert all("locality<1>" in str(p) and "read" in str(p) for p in prefetches)
    # C: each row's first and last element (the row may straddle two lines), before the loop
    assert len(q.ops_named(kernel, "memref.prefetch")) - len(prefetches) == 12


def _pipeline_summary(steps, spec):
    scripts = []
    with ir.Context(), ir.Location.unknown():
        module = build_microkernel(spec)
        apply_strategy(module, Strategy("t", spec, steps), 8, lambda name, mod, script: scripts.append(script))
    return next(s for s in scripts if "pipeline:" in s)


def test_pipeline_first_step_carries_one_k_step_of_operands():
    spec = KernelSpec(4, 8, 16)
    whole = _pipeline_summary(BASE + (UnrollK(2), Pipeline(2)), spec)
    first = _pipeline_summary(BASE + (UnrollK(2), Pipeline(2, carry="first-step")), spec)
    count = [int(re.search(r"(\d+) loaded values carried", t).group(1)) for t in (whole, first)]
    assert count[1] * 2 == count[0]  # one k-step of the two in the unrolled body
    assert Pipeline(2).to_dict() == {"step": "pipeline", "stages": 2}  # old strategies keep their hash


@pytest.mark.parametrize("stages", [2, 3])
def test_pipeline_issues_next_iterations_loads_before_this_iterations_fmas(stages):
    _, _, kernel = transformed(BASE + (ScalarLoads(), Pipeline(stages)), KernelSpec(4, 8, 16))
    (loop,) = q.ops_named(kernel, "scf.for")
    iv = loop.regions[0].blocks[0].arguments[0]
    loads = [op for op in q.walk(loop) if op.name in ("memref.load", "vector.load")]
    assert loads
    def k_offsets(op):
        """Offsets c of every `iv + c` the op's address depends on."""
        found, stack = set(), [op]
        while stack:
            for v in stack.pop().operands:
                if isinstance(v.owner, ir.Block):
                    continue
                producer = v.owner.operation
                if producer.name == "arith.addi" and producer.operands[0] == iv:
                    found.add(q.constant_int(producer.operands[1]))
                stack.append(producer)
        return found

    assert set().union(*(k_offsets(load) for load in loads)) == {stages - 1}
    assert all(k_offsets(load) for load in loads), "every load in the loop is for a later iteration"
    # The FMAs of this iteration consume values loaded by an earlier one (loop-carried).
    args = set(loop.regions[0].blocks[0].arguments)
    assert all(any(v in args or not isinstance(v.owner, ir.Block) and v.owner.name == "vector.broadcast"
                   for v in f.operands) for f in q.ops_named(loop, "vector.fma"))
    assert q.trip_count(loop) == 16 - (stages - 1)


# --- every step checks its promise on the IR it produced: a broken rewrite is caught --------------


def test_schedule_catches_an_order_that_breaks_a_dependence(monkeypatch):
    from transforms import schedule
    monkeypatch.setattr(schedule, "order", lambda ops, policy, **kw: list(reversed(range(len(ops)))))
    with pytest.raises(StepFailed, match="schedule: the 'loads-first' order breaks"):
        transformed(BASE + (UnrollK(2), Schedule("loads-first")))


def test_pipeline_catches_a_loop_it_did_not_pipeline(monkeypatch):
    import transforms.steps_loop as steps_loop
    monkeypatch.setattr(steps_loop, "software_pipeline", lambda loop, stages, first: 4)
    with pytest.raises(StepFailed, match="pipeline: the loop does not run"):
        transformed(BASE + (UnrollK(2), Pipeline(2)))


def test_c_after_loop_catches_accumulators_still_read_from_c(monkeypatch):
    import transforms.steps_loop as steps_loop
    monkeypatch.setattr(steps_loop, "defer_accumulator_reads", lambda loop: 1)
    with pytest.raises(StepFailed, match="c_after_loop: an accumulator still starts from a value read"):
        transformed(BASE + (CAfterLoop(),))
