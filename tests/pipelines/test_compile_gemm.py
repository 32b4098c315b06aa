"""The full GEMM is right for any shape (primes, tiny, edges on every side), traversal and dtype."""
import re

import numpy as np
import pytest

from mlir import ir

from kernels_mlir.gemm import GemmSpec, build_gemm
from kernels_mlir.names import GEMM
from kernels_mlir.spec import KernelSpec
from pipelines.compile_gemm import compile_gemm, strategy_for_depth
from pipelines.targets import get_target
from runner.measure.native import NativeFunction
from runner.measure.verify import verify
from transforms import ir_query as q
from transforms.steps import CAfterLoop, Prefetch, ScalarLoads, UnrollK

from ..conftest import strategy


def _kernel(mr, nr, kc, dtype, *extra):
    return strategy(mr, nr, kc, dtype, ScalarLoads(), *extra, name=f"{mr}x{nr}")


SHAPES = [(1, 1, 1), (97, 131, 77), (1, 1000, 3), (13, 17, 19), (64, 48, 512)]


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_gemm_matches_numpy(host, m, n, k, dtype):
    spec = GemmSpec(m, n, k, KernelSpec(6, 16, 32, dtype), mc=12, nc=32)  # small blocks: every edge path runs
    check = verify(compile_gemm(spec, _kernel(6, 16, 32, dtype, UnrollK(4)), host).code, spec, seed=m + n + k)
    assert check.correct, check.message


@pytest.mark.parametrize("traversal, accumulate", [("tiles", False), ("blis", True), ("tiles", True),
                                                    ("direct", False), ("direct", True)])
def test_traversals_and_accumulation(host, traversal, accumulate):
    spec = GemmSpec(97, 131, 77, KernelSpec(4, 8, 16, "f32"), mc=8, nc=16, traversal=traversal,
                    accumulate=accumulate)
    kernel = _kernel(4, 8, 16, "f32", CAfterLoop(), UnrollK(2), Prefetch(4))
    check = verify(compile_gemm(spec, kernel, host).code, spec, seed=3)
    assert check.correct, check.message


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (97, 131, 77), (13, 17, 19)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_inner_jr_agrees_with_numpy(host, m, n, k, accumulate):
    """The swapped register-tile loops (A's micro-panel outer) cover every tile, edges included."""
    spec = GemmSpec(m, n, k, KernelSpec(6, 16, 32, "f32"), mc=12, nc=32, inner="jr", accumulate=accumulate)
    check = verify(compile_gemm(spec, _kernel(6, 16, 32, "f32", UnrollK(2)), host).code, spec, seed=m + k)
    assert check.correct, check.message


@pytest.mark.parametrize("inner, outer_step", [("ir", 16), ("jr", 6)])
def test_inner_names_the_innermost_register_tile_loop(inner, outer_step):
    """The loop around the innermost one steps over B's panels (nr) with "ir", A's (mr) with "jr"."""
    spec = GemmSpec(60, 64, 32, KernelSpec(6, 16, 32, "f32"), mc=12, nc=32, inner=inner)
    with ir.Context(), ir.Location.unknown():
        module = build_gemm(spec, 8)
        fn = next(op for op in module.body.operations if op.sym_name.value == GEMM)
        call = next(op for op in q.walk(fn) if op.name == "func.call")
        loops = [q.constant_int(loop.operands[2]) for loop in _enclosing_loops(call)[:2]]
        assert loops == [{"ir": 6, "jr": 16}[inner], outer_step]


def test_c_is_overwritten_unless_accumulating(host):
    spec = GemmSpec(7, 9, 5, KernelSpec(2, 4, 8, "f64"), mc=4, nc=8)
    code = compile_gemm(spec, _kernel(2, 4, 8, "f64"), host).code
    a, b = np.ones((7, 5)), np.ones((5, 9))
    c = np.full((7, 9), 1e6)
    NativeFunction(code, GEMM, [a, b, c], n_scalars=2)(0, 9)  # one call on all the columns
    assert np.array_equal(c, np.full((7, 9), 5.0))


def test_a_remainder_depth_drops_what_it_cannot_take():
    s = _kernel(6, 16, 256, "f32", UnrollK(4), Prefetch(16))
    assert strategy_for_depth(s, 256, 8) == s
    tail = strategy_for_depth(s, 77, 8)
    assert tail.kernel.kc == 77 and [x.kind for x in tail.steps if x.kind in ("unroll_k", "prefetch")] == []
    assert strategy_for_depth(s, 88, 8).steps == s.steps  # 4 divides 88


def _enclosing_loops(op) -> list:
    loops, parent = [], op.parent
    while parent is not None and parent.name != "func.func":
        if parent.name == "scf.for":
            loops.append(parent)
        parent = parent.parent
    return loops


def test_each_panel_is_packed_once_per_block_outside_the_tile_loops():
    spec = GemmSpec(256, 256, 600, KernelSpec(6, 16, 128), mc=48, nc=128)
    with ir.Context(), ir.Location.unknown():
        module = build_gemm(spec, 8)
        gemm = next(op for op in module.body.operations if op.sym_name.value == GEMM)
        calls = [op for op in q.walk(gemm) if op.name == "func.call"]
        tile_loops = {loop for call in calls for loop in _enclosing_loops(call)}
        assert {len(_enclosing_loops(call)) for call in calls} == {4, 5}  # jc, (pc,) ic, jr, ir: 600 = 4 x 128 + 88
        packs = [op for op in q.walk(gemm) if op.name == "memref.store"
                 and not isinstance(op.operands[1].owner, ir.Block) and op.operands[1].owner.name == "memref.alloc"]
        shared = sorted({len([l for l in _enclosing_loops(p) if l in tile_loops]) for p in packs})
        assert shared == [1, 2, 3]  # B: jc (tail), jc+pc; A: jc+pc+ic -- never inside jr or ir


def _int8_kernel(kc: int):
    """A u8 x s8 kernel on vpdpbusd, 2 x 16 (the GEMMs below only run it where the host has VNNI)."""
    from kernels_mlir.spec import KernelSpec
    from transforms.dot_product import DotProduct, TileRegisters
    from transforms.steps import HoistAccumulators, LowerTransfers, TileK, Vectorize
    from transforms.strategy import Strategy
    return Strategy("u8s8-2x16", KernelSpec(2, 16, kc, "u8s8"),
                    (TileK(4), TileRegisters(1, 16), Vectorize(), HoistAccumulators(), DotProduct("vpdpbusd"),
                     LowerTransfers()))


@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("traversal", ["blis", "tiles"])
def test_int8_gemm_is_exact(host, m, n, k, traversal):
    """K need not be a multiple of 4: the last group is zero-padded in the packed panels."""
    if host.lacks("vpdpbusd"):
        pytest.skip("host lacks AVX512-VNNI; test_int8_gemm_uses_vpdpbusd checks the code for znver4")
    spec = GemmSpec(m, n, k, KernelSpec(2, 16, 16, "u8s8"), mc=6, nc=32, traversal=traversal,
                    accumulate=m % 2 == 1)
    check = verify(compile_gemm(spec, _int8_kernel(16), host).code, spec, seed=m + k)
    assert check.correct and check.max_abs_error == 0, check.message


@pytest.mark.parametrize("m, n, k", SHAPES)
def test_int8_plain_loop_is_exact(host, m, n, k):
    spec = GemmSpec(m, n, k, KernelSpec(2, 16, 16, "u8s8"), traversal="direct", accumulate=True)
    check = verify(compile_gemm(spec, _int8_kernel(16), host).code, spec, seed=k)
    assert check.correct and check.max_abs_error == 0, check.message


def test_int8_gemm_uses_vpdpbusd():
    from pipelines.targets import get_target
    spec = GemmSpec(37, 53, 101, KernelSpec(2, 16, 16, "u8s8"), mc=6, nc=32)
    code = compile_gemm(spec, _int8_kernel(16), get_target("znver4"), jit=False).code
    assert "vpdpbusd" in code.assembly


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (97, 131, 77), (13, 17, 19), (2, 1000, 3)])
@pytest.mark.parametrize("traversal, split", [("blis", "jc"), ("blis", "ic"), ("tiles", "jc"), ("tiles", "ic"),
                                              ("direct", "jc")])
def test_two_threads_agree_with_numpy(host, m, n, k, traversal, split):
    """Each thread computes its share (whole register tiles of C) with its own packing buffers; a
    thread may get nothing (1x1x1). Accumulation and zeroing are per share too."""
    spec = GemmSpec(m, n, k, KernelSpec(6, 16, 32, "f32"), mc=12, nc=32, traversal=traversal, threads=2, split=split,
                    accumulate=k % 2 == 1)
    assert len(spec.partition()) == 2
    check = verify(compile_gemm(spec, _kernel(6, 16, 32, "f32", UnrollK(2)), host).code, spec, seed=m * k)
    assert check.correct, check.message


def test_partition_is_in_whole_tiles():
    spec = GemmSpec(40, 100, 8, KernelSpec(6, 16, 8, "f32"), threads=2)
    assert spec.partition() == [(0, 48), (48, 100)]  # 7 tiles of 16 columns: 3 and 4
    assert GemmSpec(40, 100, 8, KernelSpec(6, 16, 8, "f32"), threads=2, split="ic").partition() == [(0, 18), (18, 40)]
    assert GemmSpec(1, 1, 1, KernelSpec(6, 16, 256), threads=2).partition() == [(0, 0), (0, 1)]


@pytest.mark.parametrize("dtype, accumulate", [("f32", False), ("f32", True), ("f64", True)])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (13, 47, 5), (37, 53, 19), (12, 100, 7), (25, 33, 3)])
def test_direct_edges_take_whole_and_masked_vectors(host, m, n, k, dtype, accumulate):
    """Columns past the last whole register tile: whole vectors, then one masked vector, for the tile's
    rows and for the rows past the last tile; nothing outside C is written (guarded buffers)."""
    spec = GemmSpec(m, n, k, KernelSpec(6, 32, 16, dtype), traversal="direct", accumulate=accumulate)
    check = verify(compile_gemm(spec, _kernel(6, 32, 16, dtype), host).code, spec, seed=m * n + k)
    assert check.correct, check.message


@pytest.mark.parametrize("dtype, m, n, k, threads", [("f32", 13, 256, 7, 1), ("f32", 20, 512, 5, 2),
                                                     ("f64", 7, 128, 9, 1), ("u8s8", 9, 1024, 8, 1)])
def test_direct_reads_a_copy_of_b_where_its_rows_share_cache_sets(host, dtype, m, n, k, threads):
    """B's rows 1 KiB apart (or a multiple): the tile columns read a contiguous copy of B's strip, right,
    for whole tiles and the rows past them, on each thread's share."""
    kernel = KernelSpec(2, 16, 16, dtype) if dtype == "u8s8" else KernelSpec(6, 32 if dtype == "f32" else 16, 16, dtype)
    spec = GemmSpec(m, n, k, kernel, traversal="direct", threads=threads)
    strategy = _int8_kernel(16) if dtype == "u8s8" else _kernel(kernel.mr, kernel.nr, kernel.kc, dtype)
    compiled = compile_gemm(spec, strategy, host)
    assert "@malloc" in compiled.code.optimized_ir  # the strip's buffer: this shape takes the copy
    check = verify(compiled.code, spec, seed=m + n + k)
    assert check.correct, check.message


def test_direct_edges_are_vector_code_not_scalar_loops():
    """On znver4 (16 f32 lanes) 37 = 32 + 5 columns: the 5 run as one masked vector (vmaskmov or an
    AVX-512 masked move), with no scalar multiply-add left."""
    spec = GemmSpec(30, 37, 8, KernelSpec(6, 32, 8, "f32"), traversal="direct")
    code = compile_gemm(spec, _kernel(6, 32, 8, "f32"), get_target("znver4")).code
    text = code.assembly
    assert re.search(r"vmovups\s+[^\n]*\{%k\d\}", text) or "vmaskmov" in text
    assert not re.search(r"\bvfmadd\d+ss\b|\bvmulss\b", text)


def test_whole_panels_are_packed_by_vectors_and_c_is_zeroed_tile_by_tile():
    """B's panel rows are one vector copy each, A's panels one 6 x 8 shuffle per 8 values of k, and C = A.B
    zeroes each tile right before its first call (a vector store per row), with no loop over C of its own."""
    spec = GemmSpec(256, 256, 256, KernelSpec(6, 16, 128), mc=48, nc=128)
    with ir.Context(), ir.Location.unknown():
        module = build_gemm(spec, 8)
        gemm = next(op for op in module.body.operations if op.sym_name.value == GEMM)
        ops = list(q.walk(gemm))
        shuffles = [op for op in ops if op.name == "vector.shuffle"]
        assert ir.VectorType(shuffles[-1].result.type).shape == [48]
        assert any(op.name == "vector.load" and ir.VectorType(op.result.type).shape == [16] for op in ops)
        c = gemm.regions[0].blocks[0].arguments[2]
        c_stores = [op for op in ops if op.name in ("memref.store", "vector.store") and op.operands[1] == c]
        assert [op.name for op in c_stores if op.name == "vector.store"] == ["vector.store"] * 6
        calls = [op for op in ops if op.name == "func.call"]
        assert len(calls) == 4  # the peeled first block and the rest, each a full and an edge tile
        tile_loops = {loop for call in calls for loop in _enclosing_loops(call)}
        assert all(set(_enclosing_loops(op)) & tile_loops for op in c_stores)  # C is written only where tiles are
