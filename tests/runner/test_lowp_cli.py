"""Low-precision configs through the CLI: an instruction the target cannot have is exit 2 with one line
naming the step and the feature; on a host that lacks the feature each strategy is skipped with one
line and the run succeeds (the AVX2 cap stands in for such a host on any CI machine)."""
import os
import subprocess
import sys
import textwrap

from runner.cli.main import main

from .jsonl import of_type, results

LOWP = textwrap.dedent("""
    [experiment]
    name = "lowp"
    target = "TARGET"
    [timing]
    min_sample_seconds = 0.002
    samples = 10
    [defaults]
    kc = 32
    dtype = "bf16"
    steps = [{ step = "tile_k", size = 2 }, { step = "tile_registers", rows = 1, cols = 16 }, "vectorize",
             "hoist_accumulators", { step = "dot_product", instruction = "vdpbf16ps" }, "lower_transfers"]
    [[strategy]]
    name = "bf16-2x32"
    mr = 2
    nr = 32
    [[strategy]]
    name = "u8s8-2x16"
    dtype = "u8s8"
    mr = 2
    nr = 16
    steps = [{ step = "tile_k", size = 4 }, { step = "tile_registers", rows = 1, cols = 16 }, "vectorize",
             "hoist_accumulators", { step = "dot_product", instruction = "vpdpbusd" }, "lower_transfers"]
""")


def write(tmp_path, target):
    path = tmp_path / "lowp.toml"
    path.write_text(LOWP.replace("TARGET", target))
    return path


def test_instruction_the_target_lacks_is_exit_2_naming_step_and_feature(tmp_path, capsys):
    path = write(tmp_path, "znver3")
    assert main(["asm", str(path), "--out", str(tmp_path / "asm")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "steps[4] (dot_product): vdpbf16ps needs avx512bf16, which znver3 (znver3) does not have" in err
    assert not (tmp_path / "asm").exists()


def test_host_without_the_feature_skips_each_strategy_and_succeeds(tmp_path):
    path = write(tmp_path, "host")
    env = {**os.environ, "UKL_HOST_ISA": "avx2"}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path), "--json", "--db",
                           str(tmp_path / "r.sqlite")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = results(proc.stdout)
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    assert "uses vdpbf16ps, which needs avx512bf16" in records[0]["error"]
    assert "uses vpdpbusd, which needs avx512vnni" in records[1]["error"]


def test_arm_config_predicts_and_verifies_under_qemu(capsys):
    assert main(["mca", "experiments/lowp_arm.toml", "--json"]) == 0
    records = of_type(capsys.readouterr().out, "prediction")
    assert {r["status"] for r in records} == {"ok"} and {r["verification"] for r in records} == {"qemu-aarch64"}
    best = {r["name"]: r["predicted_fraction_of_peak"] for r in records}
    assert best["smmla-8x8"] > 0.9 and best["bfmmla-8x8"] > 0.9  # neoverse-v1, against the instruction's peak
