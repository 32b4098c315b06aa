"""SVE and SME micro-kernels: one binary, verified under qemu at several vector lengths (the tools, and a
qemu whose SME is right, are installed by `make test`: no skipping)."""
import re

import pytest

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.names import c_interface
from kernels_mlir.spec import KernelSpec
from pipelines.asm_analysis import hot_loop, streaming_switches
from pipelines.codegen import generate
from pipelines.compile import compile_strategy, scalable_codegen_target
from pipelines.compile_gemm import compile_gemm
from pipelines.targets import get_target
from runner.cli.main import main
from runner.cli.mca import predict_candidates
from runner.emulation.qemu import SME_QEMU_MAJOR, EmulatedFailure, qemu_version, run_emulated_entry
from runner.kinds.gemm import gemm_spec
from runner.measure.lifecycle import Candidate
from runner.measure.verify import verify_emulated
from runner.studies.streaming_cost import streaming_cost
from transforms.errors import StrategyError
from transforms.steps import IndexedFma, ScalarLoads, UnrollK
from transforms.strategy import Strategy, default_steps

from .jsonl import of_type
from .sabotage_steps import ShiftedAccumulator

pytestmark = pytest.mark.emulation

#: An architecture level: its code must run at any vector length.
ANY_LENGTH = "armv9.2-a-sme"


def _compiled(spec: KernelSpec, *extra, target: str = ANY_LENGTH):
    strategy = Strategy("t", spec, default_steps(spec) + extra)
    return strategy, compile_strategy(strategy, get_target(target), jit=False, keep_stages=True)


def test_the_qemu_the_tests_use_executes_sme_right():
    assert qemu_version()[0] >= SME_QEMU_MAJOR, "run `make test`: it fetches a qemu-aarch64 of version 9 or later"


@pytest.mark.parametrize("spec, extra", [
    (KernelSpec(8, 8, 13, "f32", scalable="sve"), ()),
    (KernelSpec(5, 12, 9, "f32", scalable="sve"), (UnrollK(3),)),
    (KernelSpec(6, 4, 11, "f64", scalable="sve"), ()),
    (KernelSpec(8, 8, 15, "f32", scalable="sve"), (IndexedFma(), UnrollK(5))),
    (KernelSpec(6, 4, 7, "f64", scalable="sve"), (IndexedFma(),)),
    (KernelSpec(4, 8, 9, "f32", scalable="sve"), (ScalarLoads(),)),
])
def test_one_sve_binary_is_right_at_three_vector_lengths(spec, extra):
    _, compiled = _compiled(spec, *extra)
    assembly = compiled.code.assembly
    assert re.search(r"\bfmla\tz\d+\.[sd]", assembly)
    if IndexedFma() in extra:  # four rows' A per ld1rq, each FMA indexing one of them: no broadcast left
        assert re.search(r"\bld1rq[wd]\t", assembly) and re.search(r"\bfmla\tz\d+\.[sd], z\d+\.[sd], z\d+\.[sd]\[\d\]",
                                                                   assembly)
        assert not re.search(r"\bmov\tz\d+\.[sd], z\d+\.[sd]\[", assembly)
    for bits in (128, 256, 512):
        check = verify_emulated(compiled.code, spec, seed=3, vector_bits=bits)
        assert check.correct, f"{bits}-bit vectors: {check.message}"
        assert check.max_abs_error > 0  # random inputs: the kernel computed something


@pytest.mark.parametrize("spec, instruction", [
    (KernelSpec(8, 8, 13, "f32", scalable="sme"), "fmopa"),
    (KernelSpec(4, 8, 37, "f32", scalable="sme"), "fmopa"),
    (KernelSpec(8, 8, 20, "s8s8", scalable="sme"), "smopa"),
    (KernelSpec(4, 4, 12, "s8s8", scalable="sme"), "smopa"),
    (KernelSpec(8, 8, 14, "bf16", scalable="sme"), "bfmopa"),
])
def test_sme_kernels_are_right_at_two_streaming_lengths(spec, instruction):
    _, compiled = _compiled(spec)
    assembly = compiled.code.assembly
    assert re.search(rf"\b{instruction}\tza\d\.s", assembly)
    assert streaming_switches(assembly, "ukernel") == 1  # entered once per call, outside the k loop
    loop = hot_loop(assembly, "ukernel")
    assert not any(i.mnemonic.startswith("smst") for i in loop)
    assert not any("za" in o and i.mnemonic.startswith(("ld1", "st1")) for i in loop for o in i.operands)
    for bits in (256, 512):
        check = verify_emulated(compiled.code, spec, seed=5, vector_bits=bits)
        assert check.correct, f"{bits}-bit streaming vectors: {check.message}"
        if spec.element.acc.exact:
            assert check.max_abs_error == 0


def test_an_sme_kernel_accumulating_into_the_wrong_rows_is_wrong():
    spec = KernelSpec(8, 8, 9, "f32", scalable="sme")
    _, compiled = _compiled(spec, ShiftedAccumulator())
    check = verify_emulated(compiled.code, spec, vector_bits=256)
    assert not check.correct and "expected" in check.message


def test_an_sme_kernel_whose_products_go_to_the_wrong_tile_is_wrong():
    """Tile 1's outer products accumulate into tile 0: the LLVM IR is edited after MLIR, as a miscompile
    in tile allocation would leave it."""
    spec = KernelSpec(8, 8, 9, "f32", scalable="sme")
    strategy, compiled = _compiled(spec)
    ir, count = re.subn(r"(@llvm\.aarch64\.sme\.mopa\.nxv4f32\(i32 )1,", r"\g<1>0,", compiled.stages["91-llvm-ir.ll"])
    assert count == 1
    target = scalable_codegen_target(strategy, get_target(ANY_LENGTH))
    wrong = generate(ir, target, strategy.llvm, jit=False)
    check = verify_emulated(wrong, spec, vector_bits=128)
    assert not check.correct and "expected" in check.message


def test_mca_of_the_sve_config_on_neoverse_v2(capsys):
    assert main(["mca", "experiments/sve_arm.toml", "--target", "neoverse-v2", "--json"]) == 0
    records = of_type(capsys.readouterr().out, "prediction")
    assert len(records) >= 5
    for r in records:
        assert r["status"] == "ok" and r["verified"] is True, r
        assert r["verification"] == "qemu-aarch64 at 128-bit vectors" and r["model"] == "V2"
        assert 0 < r["predicted_fraction_of_peak"] <= 1.0
        assert r["model_ceiling"] is None  # the model's own peak kernel is a fixed-width one
    best = max(records, key=lambda r: r["predicted_fraction_of_peak"])
    assert best["predicted_fraction_of_peak"] >= 0.9 and best["spills"] == 0 and "idx" in best["name"]


def test_asm_of_an_sme_kernel_tags_its_outer_products_and_says_its_mode_switches(capsys):
    assert main(["asm", "experiments/sme_arm.toml", "--strategy", "smopa-n8xn8"]) == 0
    out = capsys.readouterr().out
    assert "ZA tiles 4, ZA moves in the loop 0, streaming-mode switches per call 1" in out
    assert out.count("MOPA  smopa za") == 4


def test_mca_of_the_sme_config_is_a_labelled_bound(capsys):
    assert main(["mca", "experiments/sme_arm.toml"]) == 0
    out = capsys.readouterr().out
    assert "an instruction-mix bound, not a scheduling model" in out
    assert main(["mca", "experiments/sme_arm.toml", "--json"]) == 0
    records = {r["name"]: r for r in of_type(capsys.readouterr().out, "prediction")}
    for r in records.values():
        assert r["status"] == "ok" and r["verification"] == "qemu-aarch64 at 512-bit vectors"
        assert r["streaming_switches"] == 1 and r["sme_bound"]["mix"].get("za move", 0) == 0
    # One tile: each fmopa waits the previous one's 4 cycles; four tiles issue one per cycle.
    assert records["fmopa-n4xn4"]["predicted_fraction_of_peak"] == 0.25
    assert records["fmopa-n8xn8"]["predicted_fraction_of_peak"] == 1.0
    assert records["fmopa-n8xn8"]["za_tiles_used"] == 4
    assert records["smopa-n8xn8"]["sme_bound"]["instruction"] == "smopa"
    assert records["bfmopa-n8xn8"]["sme_bound"]["instruction"] == "bfmopa"


@pytest.mark.parametrize("config, target, message", [
    ("experiments/sve_arm.toml", "neoverse-n1", "scalable: a sve kernel, but neoverse-n1 (neoverse-n1) has no SVE "
                                                "(it compiles for --target neoverse-v1)"),
    ("experiments/sme_arm.toml", "neoverse-v2", "scalable: a sme kernel, but neoverse-v2 (neoverse-v2) has no SME "
                                                "(it compiles for --target apple-m4)"),
    ("experiments/sve_arm.toml", "apple-m4", "has no SVE outside streaming mode"),
    ("experiments/sme_arm.toml", "znver3", "znver3 (znver3) is not an Arm core"),
])
def test_a_scalable_kernel_for_a_core_without_it_is_one_line(capsys, config, target, message):
    assert main(["mca", config, "--target", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_streaming_mode_costs_one_switch_per_call_counted_under_qemu():
    spec = KernelSpec(8, 8, 64, "f32", scalable="sme")
    cost = streaming_cost(Strategy("fmopa", spec, default_steps(spec)), get_target(ANY_LENGTH), 256)
    assert cost.switches == 1
    assert cost.streaming == {"smstart/smstop": 4, "lazy-save check (TPIDR2_EL0)": 1, "d8-d15 saved and restored": 8}
    assert cost.za_slices == 4 * 2 * 8  # four tiles of eight rows at 256 bits, loaded once and stored once
    assert 4 <= cost.per_k_step <= 16  # four fmopa and their operands per k-step, nothing per call in the loop
    assert cost.per_call > cost.za_slices


@pytest.mark.parametrize("kernel, shape, bits", [
    (KernelSpec(8, 8, 32, "f32", scalable="sme"), (37, 45, 53), 256),
    (KernelSpec(4, 8, 16, "f32", scalable="sme"), (19, 33, 40), 512),
    (KernelSpec(8, 8, 32, "s8s8", scalable="sme"), (37, 45, 53), 256),  # K padded to whole 4-way steps
    (KernelSpec(8, 8, 32, "bf16", scalable="sme"), (21, 70, 51), 128),
    (KernelSpec(8, 8, 32, "f32", scalable="sve"), (37, 45, 53), 512),
])
def test_a_gemm_around_a_scalable_kernel_is_right_on_odd_shapes(kernel, shape, bits):
    tile = kernel.at_vscale(bits // 128)
    spec = GemmSpec(*shape, kernel, mc=2 * tile.mr, nc=3 * tile.nr, vector_bits=bits)
    compiled = compile_gemm(spec, Strategy("g", kernel, default_steps(kernel)), get_target(ANY_LENGTH), jit=False)
    check = verify_emulated(compiled.code, spec, vector_bits=spec.vector_bits)
    assert check.correct, check.message
    if kernel.element.acc.exact:
        assert check.max_abs_error == 0


def test_a_scalable_gemm_run_at_another_length_traps():
    kernel = KernelSpec(8, 8, 16, "f32", scalable="sme")
    spec = GemmSpec(20, 20, 20, kernel, mc=32, nc=32, vector_bits=256)
    compiled = compile_gemm(spec, Strategy("g", kernel, default_steps(kernel)), get_target(ANY_LENGTH), jit=False)
    ops = spec.operands(0)
    with pytest.raises(EmulatedFailure, match="signal"):
        run_emulated_entry(compiled.code.object_code, c_interface(spec.entry), spec.dtype, ops, [(0, 20)], 512)


def test_mca_of_sme_gemms_verifies_them_at_the_cores_length(capsys):
    assert main(["mca", "experiments/gemm_sme_arm.toml", "--json"]) == 0
    records = of_type(capsys.readouterr().out, "prediction")
    assert len(records) == 6
    for r in records:
        assert r["status"] == "ok" and r["verified"] is True and r["verification"] == "qemu-aarch64 at 512-bit vectors"


def test_a_gemm_around_a_scalable_kernel_needs_a_core_that_fixes_the_length():
    kernel = KernelSpec(8, 8, 16, "f32", scalable="sme")
    strategy = Strategy("g", kernel, default_steps(kernel))
    assert gemm_spec(strategy, (20, 20, 20), target=get_target("apple-m4")).vector_bits == 512
    with pytest.raises(StrategyError, match="built for one vector length, which armv9.2-a-sme .* does not fix"):
        gemm_spec(strategy, (20, 20, 20), target=get_target(ANY_LENGTH))


def test_convolutions_run_their_gemm_routes_on_an_sme_kernel(capsys):
    """The first seed's path: im2col, the bounded chunk and the implicit GEMM around smopa (K = R.S.C padded
    to whole 4-way steps), each verified exactly under qemu; the direct routes are not built for SME."""
    assert main(["mca", "experiments/conv_sme_arm.toml", "--strategy", "smopa-n8xn8", "--json"]) == 0
    records = of_type(capsys.readouterr().out, "prediction")
    routes = {r["name"].rsplit("/", 1)[1].split("-")[0] for r in records}
    assert routes == {"im2col", "im2col_chunked", "igemm", "pointwise"}
    for r in records:
        assert r["status"] == "ok" and r["verified"] is True, r
        assert r["sme_bound"]["instruction"] == "smopa"


def test_a_sabotaged_sme_kernel_is_recorded_wrong_answer_with_no_prediction():
    spec = KernelSpec(8, 8, 9, "f32", scalable="sme")
    strategy = Strategy("wrong", spec, default_steps(spec) + (ShiftedAccumulator(),))
    (record,) = predict_candidates([Candidate.microkernel(strategy, get_target("apple-m4"))])
    assert record["status"] == "wrong_answer" and record["verified"] is False and "expected" in record["error"]
    assert record["predicted_fraction_of_peak"] is None
