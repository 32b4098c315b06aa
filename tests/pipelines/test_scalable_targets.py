"""SVE and SME facts in the target table and in reading assembly."""
import pytest

from pipelines.asm_analysis import Instruction, annotate, classify, fma_bits, fma_flops, streaming_switches
from pipelines.targets import TARGETS, get_target, target_from_dict, za_tiles


def test_rows_say_which_cores_have_sve_and_sme_and_at_what_length():
    assert TARGETS["neoverse-v1"].sve_bits == 256 and TARGETS["neoverse-v2"].sve_bits == 128
    assert TARGETS["a64fx"].sve_bits == 512 and TARGETS["a64fx"].peak_flops_per_cycle("f32", 512) == 64
    m4 = TARGETS["apple-m4"]
    assert m4.sme.svl_bits == 512 and m4.sme.rate("fmopa").per_cycle == 1.0 and m4.lacks_scalable("sve")
    assert m4.fma is None  # no cited NEON datapath for M4: unknown, not guessed
    level = TARGETS["armv9.2-a-sme"]
    assert level.has_sve and level.scalable_bits("sve") is None and level.sme.svl_bits is None
    assert level.sme.outer_products == ()  # no architectural rate
    assert TARGETS["neoverse-n1"].lacks_scalable("sve") == "neoverse-n1 (neoverse-n1) has no SVE"
    assert za_tiles(32) == 4 and za_tiles(64) == 8


@pytest.mark.parametrize("name", ["apple-m4", "armv9.2-a-sme", "neoverse-v1", "a64fx"])
def test_scalable_rows_survive_their_json(name):
    assert target_from_dict(get_target(name).to_dict()) == get_target(name)


def _inst(text: str) -> Instruction:
    mnemonic, rest = text.split(None, 1)
    return Instruction(mnemonic, tuple(o.strip() for o in rest.split(", ")))


@pytest.mark.parametrize("text, bits, flops", [
    ("fmla z0.s, p0/m, z1.s, z2.s", 256, 16),
    ("fmla z0.d, p0/m, z1.d, z2.d", 512, 16),
    ("fmopa za0.s, p0/m, p1/m, z0.s, z1.s", 512, 2 * 16 * 16),
    ("bfmopa za1.s, p0/m, p0/m, z0.h, z1.h", 128, 2 * 4 * 4 * 2),
    ("smopa za3.s, p0/m, p0/m, z0.b, z1.b", 256, 2 * 8 * 8 * 4),
    ("fmopa za7.d, p0/m, p0/m, z0.d, z1.d", 512, 2 * 8 * 8),
    ("fmla v0.4s, v1.4s, v2.s[1]", 512, 8),  # NEON stays 128-bit whatever the SVE length
])
def test_flops_of_sve_fmas_and_outer_products(text, bits, flops):
    assert fma_flops(_inst(text), bits) == flops


def test_sme_instructions_are_tagged():
    assert classify(_inst("smopa za0.s, p0/m, p0/m, z0.b, z1.b")) == "outer product"
    assert classify(_inst("st1w {za0h.s[w12, 0]}, p0, [x8]")) == "za move"
    assert classify(Instruction("smstart", ("sm",))) == "streaming switch"
    assert fma_bits(_inst("fmla z0.s, p0/m, z1.s, z2.s"), 512) == 512
    loop = [_inst("fmopa za0.s, p0/m, p0/m, z0.s, z1.s"), _inst("fmopa za1.s, p0/m, p0/m, z0.s, z2.s"),
            _inst("ld1w {za0h.s[w12, 0]}, p0/z, [x8]")]
    note = annotate(loop, 32, True)
    assert note.za_tiles_used == 2 and note.za_moves == 1 and note.vector_registers_used == 3


def test_streaming_switches_count_pairs_in_the_function():
    assembly = "f:\n\tsmstart\tza\n\tsmstart\tsm\n\tnop\n\tsmstop\tsm\n\tsmstop\tza\n\tret\n.Lfunc_end0:\n"
    assert streaming_switches(assembly, "f") == 1
