"""The GEMM spec: validation, blocking as run, the micro-kernel depths it needs."""
import pytest

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.spec import KernelSpec, SpecError


def test_blocks_are_clipped_to_the_matrix_and_tiles_pack_everything():
    assert GemmSpec(97, 131, 77, KernelSpec(6, 16, 256), mc=96, nc=1024).blocks == (96, 144, 77)
    assert GemmSpec(97, 131, 77, traversal="tiles").blocks == (102, 144, 77)  # whole, tile-rounded


@pytest.mark.parametrize("k, kc, depths", [(1024, 256, (256,)), (600, 256, (256, 88)), (77, 256, (77,))])
def test_kernel_depths(k, kc, depths):
    assert GemmSpec(8, 8, k, KernelSpec(6, 16, kc)).kernel_kcs == depths


@pytest.mark.parametrize("fields, message", [
    ({"m": 0}, "m: must be an integer between 1"), ({"mc": 100}, "mc and nc: must be multiples of mr=6"),
    ({"traversal": "zigzag"}, "traversal: must be one of"), ({"dtype": "f16"}, "dtype: must be one of"),
    ({"mr": 0}, "mr: must be between 1"), ({"shape": 3}, "not a GEMM's fields"),
])
def test_bad_specs_name_the_field(fields, message):
    with pytest.raises(SpecError, match=message):
        GemmSpec.from_dict({**GemmSpec(8, 8, 8).to_dict(), **fields})


def test_the_flat_form_is_the_one_gemm_hashes_were_made_of():
    spec = GemmSpec(97, 131, 77, KernelSpec(6, 16, 64, "bf16", 2), mc=24, nc=64, pack_bytes=4096)
    assert GemmSpec.from_dict(spec.to_dict()) == spec
    assert sorted(spec.to_dict()) == sorted(["m", "n", "k", "dtype", "mr", "nr", "kc", "mc", "nc", "traversal",
                                             "accumulate", "k_group", "threads", "split", "pack_bytes", "inner"])
