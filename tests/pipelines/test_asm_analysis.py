"""The hot-loop annotation: registers, spills, instruction mix, load-to-use distances."""
from kernels_mlir.spec import KernelSpec
from pipelines.asm_analysis import annotate
from pipelines.compile import compile_strategy
from pipelines.targets import get_target
from transforms.steps import ScalarLoads, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy


def _annotate(mr, nr, target_name, *extra):
    target = get_target(target_name)
    s = Strategy("t", KernelSpec(mr, nr, 256), REGISTER_RESIDENT_STEPS + extra)
    code = compile_strategy(s, target, jit=False).code
    return annotate(code.assembly, "ukernel", target.vector_registers, target.is_aarch64), code.assembly


def test_6x16_avx2_fits_the_register_file_without_spills():
    note, _ = _annotate(6, 16, "znver3", ScalarLoads(), UnrollK(4))
    assert note.vector_registers_used <= 16 and note.vector_registers_available == 16
    assert (note.spill_stores, note.spill_reloads) == (0, 0)
    assert note.mix["fma"] == 48 and note.mix.get("store", 0) == 0
    assert all(d is not None and d >= 1 for d in note.load_use_distances)


def test_oversized_8x32_tile_spills():
    note, _ = _annotate(8, 32, "znver3", ScalarLoads(), UnrollK(2))
    assert note.spill_stores > 0 and note.spill_reloads > 0


def test_aarch64_12x8_uses_fmla_out_of_32_registers():
    note, assembly = _annotate(12, 8, "neoverse-n1", UnrollK(2))
    assert "fmla" in assembly and note.mix["fma"] == 12 * 2 * 2  # 12 rows x 2 q-registers x unroll 2
    assert note.vector_registers_available == 32 and 24 <= note.vector_registers_used <= 32
