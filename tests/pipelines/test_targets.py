"""The target table: datapaths fix the theoretical peak, the host resolves to its row (or to
"unknown"), an ISA cap makes any host an AVX2 one, and "runs here" follows the features."""
import llvmlite.binding as llvm
import pytest

from pipelines.targets import (TARGETS, Datapath, UnknownTarget, get_target, host_target, missing_features,
                               resolve_host, runnable_as)
from transforms.errors import StrategyError

X86 = "x86_64-unknown-linux-gnu"
AVX2_FEATURES = {"avx": True, "avx2": True, "fma": True, "sse4a": True, "avx512f": False, "avx512vl": False,
                 "avx512bw": False, "avx512dq": False, "avx512cd": False}
AVX512_FEATURES = {**AVX2_FEATURES, "sse4a": False, "avx512f": True, "avx512vl": True, "avx512bw": True,
                   "avx512dq": True, "avx512cd": True, "amx-tile": True}


@pytest.mark.parametrize("name,bits,flops", [
    ("znver3", 256, 32), ("znver4", 512, 32), ("znver4", 256, 32), ("znver5", 512, 64), ("znver5", 256, 32),
    ("skylake-avx512", 512, 64), ("icelake-server", 512, 64), ("sapphirerapids", 512, 64),
    ("sapphirerapids", 256, 32), ("neoverse-n1", 128, 16), ("neoverse-v2", 128, 32), ("apple-m1", 128, 32)])
def test_theoretical_peak_comes_from_the_datapath_not_the_register_width(name, bits, flops):
    assert TARGETS[name].peak_flops_per_cycle("f32", bits) == flops
    assert TARGETS[name].peak_flops_per_cycle("f64", bits) == flops / 2


def test_a_512_bit_fma_on_two_256_bit_pipes_is_one_op_per_cycle():
    assert Datapath(2, 256, 4).ops_per_cycle(512) == 1 and Datapath(2, 512, 4).ops_per_cycle(512) == 2
    assert TARGETS["znver4"].vector_bits == 512 and TARGETS["znver4"].vector_registers == 32


def test_isa_levels_have_no_datapath_so_no_theoretical_peak():
    assert TARGETS["x86-64-v4"].peak_flops_per_cycle("f32") is None
    assert TARGETS["x86-64-v4"].peak_accumulators == 28


def test_host_resolves_to_its_table_row():
    host = resolve_host("znver4", AVX512_FEATURES, X86, None)
    assert host.row == "znver4" and host.fma == TARGETS["znver4"].fma
    assert (host.vector_bits, host.vector_registers) == (512, 32)
    assert host.peak_flops_per_cycle("f32") == 32 and host.label == "host (znver4)"


def test_a_host_the_table_does_not_know_has_an_unknown_theoretical_peak():
    host = resolve_host("rocketlake", AVX512_FEATURES, X86, None)
    assert host.row is None and host.fma is None and host.peak_flops_per_cycle("f32") is None
    assert "theoretical peak unknown" in host.label
    assert host.peak_accumulators == 28  # the peak kernel still fills the register file


def test_capping_the_host_to_avx2():
    host = resolve_host("znver4", AVX512_FEATURES, X86, "avx2")
    assert (host.vector_bits, host.vector_registers) == (256, 16) and host.isa_cap == "avx2"
    assert "-avx512f" in host.features.split(",") and "-amx-tile" in host.features.split(",")
    assert host.peak_flops_per_cycle("f32") == 32  # the datapath still applies at 256 bits
    with pytest.raises(UnknownTarget, match="UKL_HOST_ISA: must be one of"):
        resolve_host("znver4", AVX512_FEATURES, X86, "sse2")


def test_runs_here_means_the_host_has_every_feature_the_code_needs():
    avx512_host = resolve_host("znver4", AVX512_FEATURES, X86, None)
    znver3 = runnable_as(TARGETS["znver3"], avx512_host)
    assert znver3.runs_here and "-sse4a" in znver3.features.split(",")  # nothing the host lacks is emitted
    avx2_host = resolve_host("znver3", AVX2_FEATURES, X86, None)
    assert not runnable_as(TARGETS["znver4"], avx2_host).runs_here
    assert missing_features(TARGETS["znver4"], avx2_host) == ["avx512f", "avx512vl", "avx512bw", "avx512dq",
                                                               "avx512cd"]
    assert missing_features(TARGETS["neoverse-n1"], avx2_host) == ["aarch64"]


def test_on_this_host_the_table_says_what_runs():
    """Expectations about `host` derived from what LLVM detects, never written as literals."""
    enabled = {f for f, on in llvm.get_host_cpu_features().items() if on}
    capped = host_target().isa_cap is not None
    for name, row in TARGETS.items():
        expected = row.triple == host_target().triple and set(row.isa) <= enabled and \
            not (capped and row.vector_bits > 256)
        assert get_target(name).runs_here == expected, name


def test_vector_width_must_be_one_the_target_has():
    assert TARGETS["znver4"].widths == (128, 256, 512) and TARGETS["znver3"].widths == (128, 256)
    assert TARGETS["znver4"].width(None) == 512 and TARGETS["znver4"].width(256) == 256
    with pytest.raises(StrategyError, match="vector_bits: znver3 \\(znver3\\) has 128/256-bit vectors, got 512"):
        TARGETS["znver3"].width(512)
