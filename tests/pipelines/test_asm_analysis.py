"""The hot-loop annotation: registers, spills, instruction mix, load-to-use distances."""
import pytest

from kernels_mlir.spec import KernelSpec
from pipelines.asm_analysis import Instruction, annotate, classify, fma_flops, hot_loop, is_fma
from pipelines.compile import compile_strategy
from pipelines.targets import get_target
from transforms.steps import Prefetch, ScalarLoads, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy


def _annotate(mr, nr, target_name, *extra):
    target = get_target(target_name)
    s = Strategy("t", KernelSpec(mr, nr, 256), REGISTER_RESIDENT_STEPS + extra)
    code = compile_strategy(s, target, jit=False).code
    return annotate(hot_loop(code.assembly, "ukernel"), target.vector_registers, target.is_aarch64), code.assembly


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


def test_aarch64_immediates_are_not_taken_for_comments():
    note, assembly = _annotate(12, 8, "neoverse-n1", UnrollK(2))
    loop = hot_loop(assembly, "ukernel")
    offsets = [o for inst in loop if classify(inst) == "load" for o in inst.operands if o.startswith("[")]
    assert offsets and any("#" in o for o in offsets) and all(o.endswith("]") for o in offsets)
    assert all(d is not None for d in note.load_use_distances)  # every load feeds an FMA


def test_prefetches_are_their_own_class():
    for target in ("znver3", "neoverse-n1"):
        note, _ = _annotate(8, 8, target, UnrollK(2), Prefetch(distance=8))
        assert note.mix["prefetch"] >= 2 and note.mix.get("store", 0) == 0


@pytest.mark.parametrize("text, flops", [
    ("vfmadd231ps %ymm1, %ymm2, %ymm3", 16), ("vfmadd231pd %xmm1, %xmm2, %xmm3", 4),
    ("vfmadd231ps %zmm1, %zmm2, %zmm3", 32), ("vfmadd231ss %xmm1, %xmm2, %xmm3", 2),
    ("fmla v0.4s, v1.4s, v2.s[1]", 8), ("fmla v0.2d, v1.2d, v2.2d", 4), ("fmadd s0, s1, s2, s3", 2),
])
def test_fma_flops_read_off_the_registers(text, flops):
    mnemonic, rest = text.split(None, 1)
    inst = Instruction(mnemonic, tuple(o.strip() for o in rest.split(", ")))
    assert is_fma(inst) and fma_flops(inst) == flops


def test_loads_folded_into_fmas_are_counted_and_the_loop_is_printed_tagged(capsys):
    """On AVX-512 LLVM folds each A broadcast into its FMA ({1to16}): 24 more loads than `load` says."""
    from runner.cli.main import main
    assert main(["asm", "experiments/default.toml", "--strategy", "6x16-u4", "--target", "skylake-avx512"]) == 0
    out = capsys.readouterr().out
    assert "fma 24, folded load 24, load 4" in out
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert sum(words[0] == "FMA+LOAD" for words in lines) == 24 and sum(words[0] == "LOAD" for words in lines) == 4
    assert all("{1to16}" in " ".join(words) for words in lines if words[0] == "FMA+LOAD")


def test_rbp_stepped_in_the_loop_is_a_panel_pointer_not_a_frame():
    """With frame-pointer elimination %rbp is an ordinary register: loads through it are not reloads."""
    from pipelines.asm_analysis import _parse, spills
    body = [_parse(line) for line in ("\tvmovups -64(%rbp), %zmm1", "\tvdpbf16ps %zmm1, %zmm2, %zmm0",
                                      "\taddq $128, %rbp", "\tjne .LBB0_1")]
    assert spills(body) == (0, 0)
    framed = [_parse(line) for line in ("\tvmovups -64(%rbp), %zmm1", "\tvmovups %zmm3, -128(%rbp)",
                                        "\taddq $128, %rsi", "\tjne .LBB0_1")]
    assert spills(framed) == (1, 1)
