"""Scalable (SVE, SME) kernel specs: what they compute at a vector length, and what they refuse."""
import dataclasses

import pytest

from kernels_mlir.conv import ConvShape, ConvSpec
from kernels_mlir.gemm import GemmSpec
from kernels_mlir.spec import KernelSpec, SpecError
from transforms.strategy import Strategy


def test_a_scalable_spec_computes_its_tile_at_each_vector_length():
    sve, sme = KernelSpec(6, 8, 16, "f32", scalable="sve"), KernelSpec(8, 4, 16, "s8s8", scalable="sme")
    assert sve.at_vscale(4) == KernelSpec(6, 32, 16, "f32")  # 512-bit: [8] is 32 lanes, rows stay 6
    assert sme.at_vscale(2) == KernelSpec(16, 8, 16, "s8s8", k_group=1)  # both scale; panels k-major
    assert sme.group == 1 and sme.outer_product_ways == 4
    assert KernelSpec(4, 4, 8, "bf16", scalable="sme").outer_product_ways == 2


def test_fixed_width_specs_keep_their_json_and_hash():
    spec = KernelSpec(6, 16, 256)
    assert spec.to_dict() == {"mr": 6, "nr": 16, "kc": 256, "dtype": "f32"}
    assert "scalable" not in spec.fields()
    scalable = KernelSpec(6, 16, 256, scalable="sve")
    assert scalable.to_dict()["scalable"] == "sve"
    assert KernelSpec(**scalable.to_dict()) == scalable
    assert KernelSpec.from_fields(dict(scalable.fields())) == scalable
    assert Strategy("a", spec).hash != Strategy("a", scalable).hash


@pytest.mark.parametrize("fields, message", [
    (dict(mr=4, nr=6, kc=8, scalable="sve"), "nr: a sve kernel's nr counts f32 lanes per 128 bits of vector, so it "
                                             "must be a multiple of 4, got 6"),
    (dict(mr=6, nr=4, kc=8, scalable="sme"), "mr: a sme kernel's mr counts f32 lanes per 128 bits"),
    (dict(mr=4, nr=4, kc=8, dtype="f64", scalable="sme"), "dtype: sme kernels are built for f32, bf16, s8s8"),
    (dict(mr=4, nr=4, kc=8, dtype="s8s8", k_group=4, scalable="sme"), "k_group: sme kernels read k-major panels"),
    (dict(mr=4, nr=4, kc=8, scalable="neon"), "scalable: must be one of ['sve', 'sme'], got 'neon'"),
])
def test_impossible_scalable_specs_name_the_field(fields, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        KernelSpec(**fields)


def test_gemm_and_convolution_specs_carry_the_vector_length_of_a_scalable_kernel():
    kernel = KernelSpec(8, 8, 64, "s8s8", scalable="sme")
    gemm = GemmSpec(37, 45, 53, kernel, mc=64, nc=96, vector_bits=256)
    assert (gemm.mr, gemm.nr, gemm.k_step, gemm.kernel_kcs) == (16, 16, 4, (56,))  # 53 padded to 4-way steps
    assert GemmSpec.from_dict(gemm.to_dict()) == gemm
    assert "vector_bits" not in GemmSpec(8, 8, 8).to_dict()
    with pytest.raises(SpecError, match="vector_bits: a GEMM around a sme kernel is built for one vector length"):
        GemmSpec(37, 45, 53, kernel)
    with pytest.raises(SpecError, match="traversal: direct builds its own fixed-width vector code"):
        GemmSpec(37, 45, 53, kernel, traversal="direct", vector_bits=256)
    shape = ConvShape(1, 9, 11, 6, 40, 3, 3, pad=1, dtype="s8s8")
    conv = ConvSpec(shape, "igemm", kernel, mc=64, nc=64, vector_bits=512)
    assert conv.unit == 32 and not ConvSpec(shape, "im2col", kernel, mc=64, nc=64, vector_bits=512).panels
    assert ConvSpec.from_dict(conv.to_dict()) == conv
    f32 = KernelSpec(8, 8, 64, "f32", scalable="sme")
    with pytest.raises(SpecError, match="route direct: builds its own fixed-width vector code"):
        ConvSpec(dataclasses.replace(shape, dtype="f32"), "direct", f32, vector_bits=512)
