import numpy as np
import pytest
from mlir import ir

from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.reference import error_bound, reference
from kernels_mlir.spec import KernelSpec, SpecError


def test_payload_is_one_generic_with_packed_maps():
    with ir.Context(), ir.Location.unknown():
        text = str(build_microkernel(KernelSpec(6, 16, 32, "f64")))
    assert text.count("linalg.generic") == 1
    assert "memref<32x6xf64, strided<[6, 1], offset: ?>>" in text
    assert "memref<32x16xf64, strided<[16, 1], offset: ?>>" in text
    assert "memref<6x16xf64, strided<[?, 1], offset: ?>>" in text
    assert "affine_map<(d0, d1, d2) -> (d2, d0)>" in text  # A is k-major
    assert 'iterator_types = ["parallel", "parallel", "reduction"]' in text
    assert "noinline" in text


@pytest.mark.parametrize("field,value", [("mr", 0), ("nr", -3), ("kc", 1 << 20), ("mr", 2.5), ("dtype", "f16")])
def test_spec_rejects_bad_values_naming_the_field(field, value):
    args = {"mr": 6, "nr": 16, "kc": 64, "dtype": "f32", field: value}
    with pytest.raises(SpecError, match=f"^{field}:"):
        KernelSpec(**args)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_error_bound_accepts_reordered_sums_and_catches_a_missing_term(dtype):
    spec = KernelSpec(4, 8, 256, dtype)
    ops = spec.operands(0)
    expected = reference(ops.a, ops.b, ops.c)
    bound = error_bound(ops.a, ops.b, ops.c)
    reversed_order = ops.c + ops.a[::-1].T @ ops.b[::-1]  # same sum, other order, in dtype
    assert np.all(np.abs(reversed_order - expected) <= bound)
    missing_last_k = ops.c + ops.a[:-1].T @ ops.b[:-1]
    assert np.any(np.abs(missing_last_k - expected) > bound)


def test_operands_give_c_a_leading_dimension_larger_than_nr():
    ops = KernelSpec(3, 5, 7).operands(0)
    assert ops.c.shape == (3, 5) and ops.c.strides[0] > 5 * ops.c.itemsize
