"""Which steps apply to scalable kernels: the ones checked under qemu build them; the rest refuse in one line."""
import pytest

from kernels_mlir.spec import KernelSpec
from transforms.errors import StrategyError
from transforms.dot_product import TileRegisters
from transforms.steps import CAfterLoop, IndexedFma, Legalize, LowerTransfers, Prefetch, Schedule, TileK, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy, default_steps

SVE = KernelSpec(8, 8, 16, "f32", scalable="sve")
SME = KernelSpec(8, 8, 16, "f32", scalable="sme")
SME_INT8 = KernelSpec(8, 8, 16, "s8s8", scalable="sme")


def test_default_steps_follow_the_kernel():
    assert default_steps(SVE) == REGISTER_RESIDENT_STEPS
    assert not any(isinstance(s, LowerTransfers) for s in default_steps(SME))
    assert default_steps(SME_INT8)[0] == TileK(4)  # one smopa takes four k values
    Strategy("ok", SVE, default_steps(SVE) + (UnrollK(4), Schedule("interleave", 2)))
    Strategy("ok", SME, default_steps(SME) + (UnrollK(2),))


@pytest.mark.parametrize("spec, steps, message", [
    (SME, default_steps(SME) + (LowerTransfers(),), "steps[4] (lower_transfers): does not apply to an SME kernel: "
                                                    "it keeps C's [m]x[n] transfers"),
    (SME, default_steps(SME) + (Schedule(),), "steps[4] (schedule): does not apply to an SME kernel"),
    (SME, default_steps(SME) + (CAfterLoop(),), "steps[4] (c_after_loop): does not apply to an SME kernel"),
    (SVE, default_steps(SVE) + (Prefetch(16),), "steps[5] (prefetch): does not apply to an SVE kernel: its "
                                                "prefetches cover panel rows of a static width"),
    (SVE, default_steps(SVE)[:2] + (Legalize(),) + default_steps(SVE)[2:], "steps[2] (legalize): does not apply"),
    (SVE, default_steps(SVE)[:1] + (TileRegisters(2, 4),) + default_steps(SVE)[1:], "steps[1] (tile_registers)"),
    (SME, default_steps(SME) + (IndexedFma(),), "steps[4] (indexed_fma): does not apply to an SME kernel"),
    (KernelSpec(8, 8, 16), REGISTER_RESIDENT_STEPS + (IndexedFma(),), "steps[5] (indexed_fma).scalable: indexed_fma rewrites SVE kernels' FMAs"),
    (SME_INT8, (TileK(2),) + default_steps(SME_INT8)[1:], "steps[0] (tile_k).size: an SME s8s8 outer product takes "
                                                          "4 k values at once"),
])
def test_steps_that_do_not_apply_refuse_in_one_line(spec, steps, message):
    with pytest.raises(StrategyError) as caught:
        Strategy("no", spec, steps)
    assert message in str(caught.value) and "\n" not in str(caught.value)
