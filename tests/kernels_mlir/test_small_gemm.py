"""Shape-specialized small and batched GEMMs: agreement with NumPy on every small shape, guards,
the malloc variant's allocator calls, and the native cblas loop."""
import re

import numpy as np
import pytest
from mlir import ir

from kernels_mlir.small_gemm import (LIBRARY_BENCH, SMALL_GEMM, SmallGemmSpec, build_library_loop,
                                     build_small_gemm)
from kernels_mlir.spec import SpecError
from pipelines.codegen import generate
from pipelines.lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from pipelines.targets import TARGETS, host_target
from runner.measure.native import NativeFunction
from runner.measure.verify import verify
from transforms.llvm_options import LLVMOptions


def compiled(spec: SmallGemmSpec, lanes: int = 8, target=None, jit: bool = True):
    with ir.Context(), ir.Location.unknown():
        module = build_small_gemm(spec, lanes)
        lower_to_llvm_dialect(module)
        text = translate_to_llvm_ir(module)
    return generate(text, target or TARGETS["znver3"] if not jit else host_target(), LLVMOptions(), jit=jit)


SHAPES = [(1, 1, 1), (2, 3, 5), (7, 11, 13), (17, 19, 23), (31, 37, 41)] + [(n, n, n) for n in range(1, 18)]


@pytest.mark.parametrize("m, n, k", SHAPES)
def test_square_and_prime_shapes_agree_with_numpy(m, n, k):
    spec = SmallGemmSpec(m, n, k)
    check = verify(compiled(spec), spec)
    assert check.correct, check.message


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layout", ["flat", "batched"])
@pytest.mark.parametrize("dtype, lanes", [("f32", 8), ("f64", 4), ("u8s8", 8)])
def test_batches_and_dtypes_agree_with_numpy(batch, layout, dtype, lanes):
    spec = SmallGemmSpec(5, 13, 7, batch, layout, dtype, mr=4, nr=2 * lanes)
    check = verify(compiled(spec, lanes), spec)
    assert check.correct, check.message  # integers exactly (the error bound is zero)


def test_a_kernel_writing_past_c_is_caught_by_the_guards():
    wide = SmallGemmSpec(5, 9, 3)  # rows of 9: writes C as if it had a ninth column
    code = compiled(wide)
    check = verify(code, SmallGemmSpec(5, 8, 3))
    assert not check.correct and "C" in check.message


def test_the_malloc_variant_calls_the_allocator_once_per_call():
    def calls(scratch: str) -> tuple[int, int]:
        text = compiled(SmallGemmSpec(8, 8, 8, 3, "batched", scratch=scratch), jit=False).optimized_ir
        body = re.search(r"define [^@]*@ukl_small_gemm\(.*?\n}\n", text, re.S).group(0)
        return len(re.findall(r"call .*@malloc\(", body)), len(re.findall(r"call .*@free\(", body))
    assert calls("malloc") == (1, 1)
    assert calls("none") == (0, 0)


def test_an_avx2_kernel_is_fmas_on_ymm_registers():
    code = compiled(SmallGemmSpec(16, 16, 16), jit=False)
    assert re.search(r"vfmadd\d+ps\s+.*ymm", code.assembly)
    assert "zmm" not in code.assembly


@pytest.mark.parametrize("fields, message", [({"m": 0}, "m: must be an integer from 1"),
                                             ({"layout": "ragged"}, "layout: must be one of"),
                                             ({"scratch": "alloca"}, "scratch: must be one of"),
                                             ({"batch": True}, "batch: must be an integer"),
                                             ({"shape": 3}, "not a small GEMM's fields")])
def test_bad_specs_name_the_field(fields, message):
    with pytest.raises(SpecError, match=message):
        SmallGemmSpec.from_dict({**SmallGemmSpec(8, 8, 8).to_dict(), **fields})


@pytest.mark.parametrize("layout, batch", [("flat", 1), ("batched", 3)])
def test_the_native_cblas_loop_computes_the_product(layout, batch):
    import llvmlite.binding as llvm
    import ctypes
    from runner.measure.small_baselines import _symbol
    spec = SmallGemmSpec(5, 7, 3, batch, layout)
    fn, name, bits, _ = _symbol("f32")
    llvm.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
    with ir.Context(), ir.Location.unknown():
        module = build_library_loop(spec, name, bits)
        lower_to_llvm_dialect(module)
        text = translate_to_llvm_ir(module)
    code = generate(text, host_target(), LLVMOptions(), jit=True)
    ops = spec.operands(seed=2)
    out = np.zeros((spec.rows, spec.n), np.float32)
    NativeFunction(code, LIBRARY_BENCH, [ops.a, ops.b, out], n_scalars=1)(2)
    expected, bound = spec.expected(ops)
    assert np.all(np.abs(out - expected) <= bound)


@pytest.mark.parametrize("m, n, k, batch, layout", [(1, 1, 1, 1, "flat"), (7, 13, 5, 1, "flat"), (5, 33, 9, 3, "batched"),
                                                    (5, 16, 3, 3, "flat"), (17, 17, 17, 1, "flat")])
def test_packed_weights_agree_with_numpy_and_round_trip(m, n, k, batch, layout):
    spec = SmallGemmSpec(m, n, k, batch, layout, weights="packed")
    check = verify(compiled(spec), spec)
    assert check.correct, check.message
    b = np.arange(spec.b_products * k * n, dtype=np.float32).reshape(spec.b_products * k, n)
    assert spec.pack_weights(b).shape == spec.b_shape
    assert np.array_equal(spec.logical_b(spec.pack_weights(b)), b)


def test_packed_weights_need_whole_vector_panels():
    with pytest.raises(SpecError, match="nr must be a multiple of 8"):
        compiled(SmallGemmSpec(8, 8, 8, nr=12, weights="packed"))


@pytest.mark.parametrize("m, n, k, batch, layout", [(1, 1, 1, 1, "flat"), (7, 13, 5, 1, "flat"), (5, 33, 9, 3, "batched"),
                                                    (13, 16, 3, 3, "flat"), (17, 17, 17, 1, "flat"), (6, 8, 1, 2, "batched")])
def test_run_time_sizes_agree_with_numpy(m, n, k, batch, layout):
    spec = SmallGemmSpec(m, n, k, batch, layout, sizes="dynamic")
    check = verify(compiled(spec), spec)
    assert check.correct, check.message


def test_one_dynamic_function_serves_every_shape():
    """Compiled once, for a 1x1x1 spec, it computes a 17 x 9 x 5 product right: its sizes are read at run time."""
    code = compiled(SmallGemmSpec(1, 1, 1, sizes="dynamic"))
    other = SmallGemmSpec(17, 9, 5, sizes="dynamic")
    check = verify(code, other)
    assert check.correct, check.message


@pytest.mark.parametrize("m, n, k, weights, registers", [(1, 100, 9, "packed", 16), (2, 70, 5, "packed", 32),
                                                         (1, 77, 4, "rows", 16), (3, 200, 3, "rows", 32)])
def test_rows_fewer_than_the_tile_take_wide_tiles_and_agree_with_numpy(m, n, k, weights, registers):
    spec = SmallGemmSpec(m, n, k, weights=weights)
    with ir.Context(), ir.Location.unknown():
        module = build_small_gemm(spec, 8, registers)
        lower_to_llvm_dialect(module)
        text = translate_to_llvm_ir(module)
    check = verify(generate(text, host_target(), LLVMOptions(), jit=True), spec)
    assert check.correct, check.message
