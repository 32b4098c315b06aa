"""The CLI: JSON records, the table, and one-line errors with exit status 2 for every bad input."""
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from runner.cli.main import main

from .jsonl import of_type, one, results

GOOD = textwrap.dedent("""
    [experiment]
    name = "tiny"
    [timing]
    min_sample_seconds = 0.002
    samples = 10
    [defaults]
    kc = 64
    [[strategy]]
    name = "4x8"
    mr = 4
    nr = 8
    [[strategy]]
    name = "6x16-u2"
    mr = 6
    nr = 16
    steps = ["tile_k", "vectorize", "hoist_accumulators", "lower_contraction", "lower_transfers",
             "scalar_loads", { step = "unroll_k", factor = 2 }]
""")

REQUIRED_KEYS = {"name", "strategy_hash", "correct", "max_abs_error", "gflops", "gflops_min", "gflops_max",
                 "cv", "peak_gflops", "fraction_of_peak", "compile_seconds"}


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_json_records_and_database(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db), "--json"]) == 0
    lines = results(capsys.readouterr().out)
    assert [r["name"] for r in lines] == ["4x8", "6x16-u2"]
    for r in lines:
        assert REQUIRED_KEYS <= set(r)
        assert r["correct"] is True and r["gflops_min"] <= r["gflops"] <= r["gflops_max"]
        assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / r["peak_gflops"])
    rows = sqlite3.connect(db).execute("SELECT name, status, strategy_hash, samples_json FROM results").fetchall()
    assert [(n, s, h) for n, s, h, _ in rows] == [(r["name"], "ok", r["strategy_hash"]) for r in lines]
    assert all(len(json.loads(samples)) == 10 for *_, samples in rows)


def test_run_prints_an_aligned_table(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(tmp_path / "r.sqlite")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("target host (")
    lines = out.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("strategy "))
    table = lines[header:header + 4]  # header, rule, two rows
    assert [l.split()[0] for l in table[2:]] == ["4x8", "6x16-u2"]
    assert len({len(l.rstrip()) for l in table}) == 1, "columns are padded to one width"
    column = table[0].index("GFLOP/s") + len("GFLOP/s")  # right-aligned numbers end under their header
    assert all(l[column - 1].isdigit() for l in table[2:])


BAD = [
    ("malformed", "[experiment\nname = 1", r"malformed TOML"),
    ("unknown-key", GOOD.replace("mr = 4", "mrr = 4"), r"strategy\[0\]\.mrr: unknown key \(did you mean 'mr'\?\)"),
    ("unknown-section", GOOD + "\n[timming]\n", r"timming: unknown key \(did you mean 'timing'\?\)"),
    ("wrong-type", GOOD.replace("mr = 4", 'mr = "4"'), r"strategy\[0\] \(4x8\)\.mr: must be an integer, got '4'"),
    ("non-positive", GOOD.replace("mr = 4", "mr = 0"), r"\.mr: must be between 1 and 64, got 0"),
    ("absurd", GOOD.replace("kc = 64", "kc = 6400000"), r"\.kc: must be between 1 and 65536"),
    ("impossible-tile", GOOD.replace('"tile_k", "vectorize", "hoist', '{ step = "tile_k", size = 5 }, "vectorize", "hoist'),
     r"steps\[0\] \(tile_k\)\.size: must be a positive divisor of kc=64"),
    ("unknown-target", GOOD.replace('name = "tiny"', 'name = "tiny"\ntarget = "cray-1"'),
     r"experiment\.target: unknown target 'cray-1'"),
    ("bad-samples", GOOD.replace("samples = 10", "samples = 3"), r"timing\.samples: must be an integer from 10 to 1000"),
    ("bad-opt", GOOD.replace("kc = 64", 'kc = 64\nllvm = { opt = "O9" }'), r"\.llvm\.opt: must be one of"),
    ("no-strategy", "[experiment]\nname = 'x'\n", r"strategy: needs at least one \[\[strategy\]\] table"),
    ("not-native-width", GOOD.replace('"vectorize", "hoist', '"vectorize", "legalize", "hoist').replace("nr = 16", "nr = 6"),
     r"strategy '6x16-u2' cannot target host: .*legalize needs nr to be a multiple of 4 "
     r"\(the narrowest f32"),
    ("path-name", GOOD.replace('name = "4x8"', 'name = "../../x"'), r"strategy\[0\]\.name: must be a plain name"),
    ("escape-name", GOOD.replace('name = "tiny"', 'name = "t\\u001b[31m"'), r"experiment\.name: must be a plain name"),
    ("too-wide", GOOD.replace("nr = 16", "nr = 16\nvector_bits = 1024"),
     r"strategy '6x16-u2' cannot target host: vector_bits: host \(.*\) has .*-bit vectors, got 1024"),
]


@pytest.mark.parametrize("label,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, label, text, message):
    db = tmp_path / "r.sqlite"
    path = write(tmp_path, text)
    assert main(["run", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ukl: error: {path}: ")
    assert __import__("re").search(message, err), err
    assert not db.exists(), "bad input must not touch the results store"


def test_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err == f"ukl: error: {tmp_path / 'nope.toml'}: no such file\n"


def test_target_that_cannot_run_here(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace('name = "tiny"', 'name = "tiny"\ntarget = "neoverse-n1"'))
    assert main(["run", str(path), "--db", str(tmp_path / "r.sqlite")]) == 2
    assert "does not run on this host" in capsys.readouterr().err


def test_console_script_exit_status_and_no_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("nr = 8", "nr = -8"))
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_peak_json(capsys):
    assert main(["peak", "--json", "--min-sample-seconds", "0.002"]) == 0
    record = one(capsys.readouterr().out, "peak")
    assert record["gflops"] > 0 and len(record["samples"]) == 10


def test_asm_writes_every_stage_and_annotates(tmp_path, capsys):
    out = tmp_path / "dump"
    assert main(["asm", str(write(tmp_path, GOOD)), "--strategy", "6x16-u2", "--target", "znver3",
                 "--out", str(out), "--json"]) == 0
    record = one(capsys.readouterr().out, "inspection")
    assert record["name"] == "6x16-u2" and record["spill_stores"] == 0 and record["mix"]["fma"] == 24
    stages = sorted(p.name for p in (out / "6x16-u2").iterdir())
    assert stages[0] == "00-payload.mlir" and "93-assembly.s" in stages and "92-llvm-ir-O1.ll" in stages
    assert "vfmadd231ps" in (out / "6x16-u2" / "93-assembly.s").read_text()


def test_asm_unknown_strategy_is_bad_input(tmp_path, capsys):
    assert main(["asm", str(write(tmp_path, GOOD)), "--strategy", "nope"]) == 2
    assert "no strategy named 'nope'" in capsys.readouterr().err


MCA_KEYS = {"predicted_fraction_of_peak", "vector_registers_used", "spills", "verified", "cycles_per_iteration",
            "cycles_per_k_step",
            "bottleneck", "model", "status"}


@pytest.mark.emulation
def test_mca_seed_table_on_neoverse_n1_json(capsys):
    assert main(["mca", "experiments/seed_table_arm.toml", "--target", "neoverse-n1", "--json"]) == 0
    records = of_type(capsys.readouterr().out, "prediction")
    assert [r["name"] for r in records][:4] == ["8x8-u32", "4x16-total", "12x8-u2-pipe-legal-sched",
                                                 "12x8-u2-pipe-legal-sched-pf"]
    for r in records:
        assert MCA_KEYS <= r.keys() and r["status"] == "ok"
        assert r["verified"] is True and r["verification"] == "qemu-aarch64" and r["model"] == "N1"
        assert 0 < r["predicted_fraction_of_peak"] <= 1.0 and r["vector_registers_available"] == 32
        assert isinstance(r["spills"], int) and r["vector_registers_used"] <= 32


def test_mca_table_on_the_host_verifies_natively(tmp_path, capsys):
    assert main(["mca", str(write(tmp_path, GOOD)), "--target", "host"]) == 0
    out = capsys.readouterr().out
    assert "scheduling model" in out and out.count("yes (native)") == 2 and "6x16-u2" in out


def test_mca_for_a_target_narrower_than_a_strategy_is_bad_input(capsys):
    assert main(["mca", "experiments/seed_strategies_host.toml", "--target", "znver3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot target znver3: vector_bits: znver3 (znver3) has 128/256-bit" in err


@pytest.mark.timing
def test_compare_a_strategy_with_itself_is_below_the_noise_floor(capsys):
    """The placement floor is a 95% bound, so one A/A comparison is called different 5% of the time by
    construction: two independent ones both called different (0.25%) fail the test."""
    results = []
    for _ in range(2):
        assert main(["compare", "6x16-u4", "6x16-u4", "--config", "experiments/default.toml", "--json",
                     "--rounds", "20", "--min-sample-seconds", "0.005"]) == 0
        results.append(one(capsys.readouterr().out, "comparison"))
        if not results[-1]["significant"]:
            break
    result = results[-1]
    assert result["verdict"].startswith("difference below the noise floor") and not result["significant"], results
    assert result["ci_low"] <= result["ratio"] <= result["ci_high"] and result["noise_floor"] >= 0.01


@pytest.mark.timing
def test_compare_sees_a_large_difference(capsys):
    assert main(["compare", "6x16-u4", "4x24-u4", "--config", "experiments/default.toml", "--rounds", "10",
                 "--min-sample-seconds", "0.005"]) == 0
    assert "6x16-u4 is " in capsys.readouterr().out  # 4x24 without legalization runs at ~17% of peak


def test_compare_unknown_hash_is_bad_input(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db), "--json"]) == 0
    capsys.readouterr()
    assert main(["compare", "ffff", "0000", "--db", str(db)]) == 2
    assert "0 stored strategies have a hash starting with 'ffff'" in capsys.readouterr().err
    assert main(["compare", "____", "0000", "--db", str(db)]) == 2  # a prefix is literal, not a LIKE pattern
    assert "0 stored strategies have a hash starting with '____'" in capsys.readouterr().err


def test_compare_names_a_gemm_hash_for_what_it_is(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    config = write(tmp_path, GOOD.replace('name = "tiny"', 'name = "tiny"\nkind = "gemm"')
                   + "[gemm]\nshapes = [[13, 17, 19]]\nmc = 12\nnc = 32\n")
    assert main(["run", str(config), "--db", str(db), "--json"]) == 0
    gemm_hash = results(capsys.readouterr().out)[0]["gemm_hash"]
    assert main(["compare", gemm_hash, gemm_hash, "--db", str(db)]) == 2
    assert f"{gemm_hash!r} is the key of a gemm candidate" in capsys.readouterr().err


def test_a_strategy_tied_to_a_target_this_host_cannot_run_is_skipped_in_one_line(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    text = GOOD + '    [[strategy]]\n    name = "arm-only"\n    mr = 8\n    nr = 8\n    target = "neoverse-n1"\n'
    assert main(["run", str(write(tmp_path, textwrap.dedent(text))), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("skipped")]
    assert line.split(None, 1)[1].startswith("arm-only: target neoverse-n1 does not run here: host (")
    assert line.endswith("lacks aarch64")
    names = [n for (n,) in sqlite3.connect(db).execute("SELECT name FROM results")]
    assert names == ["4x8", "6x16-u2"]  # nothing stored for what did not run


def test_peak_of_another_core_that_runs_here(capsys):
    from pipelines.targets import get_target
    runnable = [name for name in ("znver3", "x86-64-v3") if get_target(name).runs_here]
    assert runnable, "every x86 host of ours runs AVX2 code"
    assert main(["peak", "--target", runnable[0], "--samples", "10", "--min-sample-seconds", "0.005", "--json"]) == 0
    result = one(capsys.readouterr().out, "peak")
    assert result["vector_bits"] == 256 and result["gflops"] > 0


def test_mca_predicts_against_the_fma_datapath(capsys):
    """Zen 4 runs 512-bit FMAs on two 256-bit pipes: the 6x16 kernel is near its peak, not at half of it."""
    assert main(["mca", "experiments/default.toml", "--target", "znver4", "--strategy", "6x16-u4", "--json"]) == 0
    record = one(capsys.readouterr().out, "prediction")
    assert record["theoretical_flops_per_cycle"] == 32
    assert 0.9 <= record["predicted_fraction_of_peak"] <= 1.0


def test_mca_on_the_host_says_when_its_datapath_is_unknown(capsys):
    from pipelines.targets import host_target
    assert main(["mca", "experiments/default.toml", "--target", "host", "--strategy", "8x8-u4"]) == 0
    out = capsys.readouterr().out
    if host_target().fma is None:
        assert "theoretical peak from the FMA datapath, unknown: no predicted fraction" in out
    else:
        assert f"{host_target().fma.pipes} FMA pipes x {host_target().fma.bits_per_pipe} bits" in out


def test_a_line_per_finished_candidate_when_asked_and_quiet_otherwise_off_a_terminal(tmp_path, capsys):
    config = write(tmp_path, GOOD)
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite"), "--progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("ok ")]
    assert [line.split()[1].rstrip(":") for line in progress] == ["4x8", "6x16-u2"]
    assert all("GFLOP/s" in line and "of peak" in line and "cv" in line for line in progress)
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite")]) == 0  # not a terminal: the table only
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("ok ")]


def test_compare_reports_the_running_ratio_after_each_round():
    from runner.studies.compare import Side, compare
    from runner.config.experiment import load
    experiment = load("experiments/default.toml")
    a, b = (next(s for s in experiment.strategies if s.name == n) for n in ("6x16-u4", "8x8-u4"))
    from pipelines.targets import host_target
    seen = []
    result = compare(Side.microkernel(a), Side.microkernel(b), host_target(), 12, 0.002, seen.append)
    assert len(seen) == 12 and seen[-1] == pytest.approx(result.ratio)
