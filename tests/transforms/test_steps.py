"""Each step's promise, checked on the IR it produces."""
import pytest
from mlir import ir

from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.spec import KernelSpec
from transforms import ir_query as q
from transforms.apply import apply_strategy
from transforms.steps import (HoistAccumulators, LowerContraction, LowerTransfers, ScalarLoads, TileK, UnrollK,
                              Vectorize)
from transforms.strategy import Strategy

BASE = (TileK(1), Vectorize(), HoistAccumulators(), LowerContraction(), LowerTransfers())


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
