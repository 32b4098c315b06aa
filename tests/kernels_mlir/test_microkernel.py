import numpy as np
import pytest
from mlir import ir

from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.reference import INT_C_MAGNITUDE, error_bound, pack_k_groups, reference, unpack_k_groups
from kernels_mlir.spec import MAX_KC, KernelSpec, SpecError
from runner.measure.verify import judge


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


@pytest.mark.parametrize("dtype,kc,k_group,message", [
    ("u8s8", 6, None, r"kc: must be a multiple of 4 for u8s8"),
    ("bf16", 8, 3, r"k_group: bf16 panels group k by 2, 4 or 1 \(1: k-major, widened in registers\), got 3"),
    ("s8s8", 12, None, r"kc: must be a multiple of 8 for s8s8"),
])
def test_low_precision_spec_names_the_grouping_problem(dtype, kc, k_group, message):
    with pytest.raises(SpecError, match=message):
        KernelSpec(4, 16, kc, dtype, k_group)


@pytest.mark.parametrize("dtype,k_group", [("bf16", 2), ("bf16", 4), ("u8s8", 4), ("s8s8", 8), ("s8s8", 4)])
def test_grouped_operands_pack_the_logical_panels(dtype, k_group):
    spec = KernelSpec(3, 8, 16, dtype, k_group)
    ops = spec.operands(seed=1)
    assert ops.a.shape == (16 // k_group, 3 * k_group) and ops.b.shape == (16 // k_group, 8 * k_group)
    a = unpack_k_groups(ops.a, k_group)
    assert np.array_equal(pack_k_groups(a, k_group), ops.a)
    # Row k of the logical panel is k group k // g, position k % g, of every column.
    assert a[5, 2] == ops.a[5 // k_group, 2 * k_group + 5 % k_group]


def test_int8_draws_cannot_overflow_int32_at_the_largest_kc():
    spec = KernelSpec(1, 16, MAX_KC, "u8s8")
    ops = spec.operands(seed=0)
    expected, bound = spec.expected(ops)
    worst = 255 * 128 * MAX_KC + INT_C_MAGNITUDE
    assert worst < 2 ** 31 and np.abs(expected).max() <= worst and not bound.any()


def test_an_int32_accumulator_that_wrapped_is_wrong():
    """The reference is int64: a kernel whose i32 accumulators wrapped differs by 2^32 and fails."""
    spec = KernelSpec(1, 16, 8, "u8s8")
    ops = spec.operands(seed=0)
    ops.c[...] = 2 ** 31 - 5
    ops.guarded["A"].view[...] = 255
    ops.guarded["B"].view[...] = 127
    expected, bound = spec.expected(ops)
    wrapped = expected.astype(np.int64).astype(np.int32)  # what int32 hardware computes
    assert (expected > 2 ** 31 - 1).all()
    check = judge(wrapped, expected, bound)
    assert not check.correct and "expected" in check.message
    assert judge(expected, expected, bound).correct
