"""Scalable (SVE, SME) kernel specs: what they compute at a vector length, and what they refuse."""
import pytest

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
