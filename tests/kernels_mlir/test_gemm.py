"""The GEMM spec: validation, blocking as run, the micro-kernel depths it needs."""
import pytest

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.spec import SpecError


def test_blocks_are_clipped_to_the_matrix_and_tiles_pack_everything():
    assert GemmSpec(97, 131, 77, mc=96, nc=1024, kc=256).blocks == (96, 144, 77)
    assert GemmSpec(97, 131, 77, traversal="tiles").blocks == (102, 144, 77)  # whole, tile-rounded


@pytest.mark.parametrize("k, kc, depths", [(1024, 256, (256,)), (600, 256, (256, 88)), (77, 256, (77,))])
def test_kernel_depths(k, kc, depths):
    assert GemmSpec(8, 8, k, kc=kc).kernel_kcs == depths


@pytest.mark.parametrize("fields, message", [
    ({"m": 0}, "m: must be an integer between 1"), ({"mc": 100}, "mc and nc: must be multiples of mr=6"),
    ({"traversal": "zigzag"}, "traversal: must be one of"), ({"dtype": "f16"}, "dtype: must be one of"),
])
def test_bad_specs_name_the_field(fields, message):
    with pytest.raises(SpecError, match=message):
        GemmSpec(**{"m": 8, "n": 8, "k": 8, **fields})
