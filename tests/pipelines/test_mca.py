"""llvm-mca predictions: they parse into numbers, and agree with what the loops obviously are."""
import pytest

from kernels_mlir.names import KERNEL
from pipelines.asm_analysis import Instruction, hot_loop
from pipelines.compile import compile_strategy
from pipelines.mca import McaError, model_ceiling, predict
from pipelines.targets import get_target
from transforms.steps import ScalarLoads, UnrollK

from ..conftest import legal_strategy, strategy
from ..runner.jsonl import one


def _predict(s, target_name):
    target = get_target(target_name)
    loop = hot_loop(compile_strategy(s, target, jit=False).code.assembly, KERNEL)
    return predict(loop, target, s.kernel.dtype)


def test_blis_6x16_on_znver3_is_predicted_fma_bound():
    p = _predict(strategy(6, 16, 256, "f32", ScalarLoads(), UnrollK(4)), "znver3")
    assert p.model == "Zn3"
    assert p.flops_per_iteration == 48 * 16  # 48 ymm FMAs
    assert 24.0 <= p.cycles_per_iteration < 26.0  # 48 FMAs on 2 pipes
    assert 0.9 < p.predicted_fraction_of_peak <= 1.0
    assert p.bottleneck in p.bounds and all(isinstance(v, float) for v in p.bounds.values())


def test_neoverse_n1_12x8_is_predicted_near_peak_and_8x12_unlegalized_is_not():
    good = _predict(strategy(12, 8, 256, "f32", UnrollK(2)), "neoverse-n1")
    assert good.model == "N1" and good.flops_per_iteration == 48 * 8
    assert good.predicted_fraction_of_peak > 0.9
    # nr = 12 is three NEON vectors: without legalization LLVM splits vector<12> badly.
    bad = _predict(strategy(8, 12, 256, "f32", UnrollK(2)), "neoverse-n1")
    assert bad.predicted_fraction_of_peak < 0.5 * good.predicted_fraction_of_peak
    legal = _predict(legal_strategy(8, 12, 256, "f32", UnrollK(2)), "neoverse-n1")
    assert legal.predicted_fraction_of_peak > 0.9


@pytest.mark.parametrize("target", ["skylake-avx512", "neoverse-v1", "neoverse-v2", "cortex-a76", "apple-m1"])
def test_every_target_in_the_table_gets_a_prediction(target):
    s = strategy(8, 16, 64, "f64", UnrollK(2))
    p = _predict(s, target)
    assert p.cycles_per_iteration > 0 and 0 < p.predicted_fraction_of_peak <= 1.0 and p.model != "?"


def test_llvm_mca_errors_are_reported():
    with pytest.raises(McaError, match="llvm-mca failed"):
        predict([Instruction("notaninstruction", ("%ymm0",))], get_target("znver3"), "f32")


@pytest.mark.parametrize("name,bits,ceiling", [("znver4", 512, 1.0), ("sapphirerapids", 256, 1.0),
                                               ("sapphirerapids", 512, 0.5), ("skylake-avx512", 512, 1.0)])
def test_the_models_own_ceiling_is_its_prediction_for_the_peak_kernel(name, bits, ceiling):
    """LLVM's Sapphire Rapids model issues zmm FMAs on one port: it cannot predict more than half the datapath."""
    assert model_ceiling(get_target(name), "f32", bits) == pytest.approx(ceiling, abs=0.01)


def test_cycles_per_k_step_compare_across_unroll_factors(capsys):
    """8x8 f32 on Neoverse N1: 16 fmla per k-step at two per cycle is 8 cycles, whatever the unroll."""
    from runner.cli.main import main
    assert main(["mca", "experiments/seed_table_arm.toml", "--target", "neoverse-n1", "--strategy", "8x8-u32",
                 "--json"]) == 0
    record = one(capsys.readouterr().out, "prediction")
    assert record["cycles_per_k_step"] == pytest.approx(8.0, abs=0.1)
    assert record["cycles_per_iteration"] == pytest.approx(32 * record["cycles_per_k_step"], rel=0.01)
    distances = record["load_use_distances"]
    assert set(distances) == {"count", "unused", "min", "median", "max"}
    assert distances["min"] <= distances["median"] <= distances["max"] and distances["count"] > 0


@pytest.mark.parametrize("name,words", [
    ("V1UnitV0", "vector/FP pipe V0 (V1UnitV0)"), ("N1UnitL.1", "load/store pipe (N1UnitL.1)"),
    ("Zn4FP1", "FP pipe 1 (Zn4FP1)"), ("SPRPort05", "port 5 (SPRPort05)"), ("A57UnitW", "FP/ASIMD pipe (A57UnitW)"),
    ("dispatch (width 6)", "dispatch (width 6)"), ("SomethingNew3", "SomethingNew3"),
])
def test_resources_are_named_in_words_where_a_rule_knows_them(name, words):
    from pipelines.mca import resource_words
    assert resource_words(name) == words


def test_the_bottleneck_is_said_in_words():
    loop = hot_loop(compile_strategy(strategy(8, 8, 64, "f32", UnrollK(4)), get_target("neoverse-v1"),
                                     jit=False).code.assembly, KERNEL)
    p = predict(loop, get_target("neoverse-v1"), "f32")
    assert p.bottleneck_words.startswith("vector/FP pipe V") and p.bottleneck in p.bottleneck_words
