"""The problem-kind seam: a kind added from one plugin module (tests.runner.axpy_kind) goes through
run, a two-knob sweep with resume, report and repro with no change to the harness."""
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from runner.kinds import KINDS, kind_named
from runner.kinds.base import UnknownKind

from .jsonl import of_type, results

PLUGIN = "tests.runner.axpy_kind"

CONFIG = textwrap.dedent("""
    [experiment]
    name = "axpy"
    kind = "axpy"

    [timing]
    min_sample_seconds = 0.002
    samples = 10

    [defaults]
    mr = 4
    nr = 8
    kc = 16

    [axpy]
    sizes = [37, 1000]
    {extra}

    [[strategy]]
    name = "o1"

    [[strategy]]
    name = "o2"
    llvm = {{ opt = "O2" }}
""")

SWEEP = textwrap.dedent("""
    [experiment]
    name = "axpy-sweep"
    kind = "axpy"

    [axpy]
    sizes = [203]

    [space]
    opt = ["O1", "O2"]
    vectors = [1, 2]

    [sweep]
    leaders = 1
    screen_min_sample_seconds = 0.001
""")


def ukl(*args):
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(),
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_a_plugin_kind_runs_sweeps_resumes_reports_and_replays(tmp_path):
    config = tmp_path / "axpy.toml"
    config.write_text(CONFIG.format(extra=""))
    db = tmp_path / "r.sqlite"
    run = ukl("run", str(config), "--db", str(db), "--json")
    assert run.returncode == 0, run.stderr
    measured = results(run.stdout)
    assert {(r["name"], r["status"], r["kind"]) for r in measured} == {
        (f"{s}@n{n}/v1", "ok", "axpy") for s in ("o1", "o2") for n in (37, 1000)}
    assert all(r["problem"] == {"n": r["axpy"]["n"], "dtype": "f32"} and r["gflops"] > 0 for r in measured)
    # One key per candidate, distinct although both sizes share a strategy.
    assert len({r["candidate_key"] for r in measured}) == 4

    sweep_config = tmp_path / "sweep.toml"
    sweep_config.write_text(SWEEP)
    sweep_db = tmp_path / "s.sqlite"
    first = ukl("sweep", str(sweep_config), "--db", str(sweep_db), "--json")
    assert first.returncode == 0, first.stderr
    screens = [r for r in results(first.stdout) if r["phase"] == "screen"]
    assert sorted((r["strategy"]["llvm"].get("opt", "O1"), r["axpy"]["vectors"]) for r in screens) == [
        ("O1", 1), ("O1", 2), ("O2", 1), ("O2", 2)]
    assert all(r["status"] == "ok" for r in screens)
    again = ukl("sweep", str(sweep_config), "--db", str(sweep_db), "--resume", "--json")
    assert again.returncode == 0, again.stderr
    assert not [r for r in results(again.stdout) if r["phase"] == "screen"]  # every point already measured
    assert "4 already measured (--resume)" in again.stderr
    stored = sqlite3.connect(sweep_db).execute(
        "SELECT COUNT(DISTINCT candidate_key) FROM results WHERE phase = 'screen' AND kind = 'axpy'").fetchone()[0]
    assert stored == 4

    report = ukl("report", "--db", str(sweep_db), "--json")  # every kind it holds, without --kind
    assert report.returncode == 0, report.stderr
    reported = results(report.stdout)
    assert len(reported) == 4 and {r["kind"] for r in reported} == {"axpy"}
    assert of_type(report.stdout, "summary")

    config.write_text(CONFIG.format(extra="sabotage = true"))
    bad = ukl("run", str(config), "--db", str(tmp_path / "bad.sqlite"), "--json")
    assert bad.returncode == 1
    wrong = results(bad.stdout)
    assert {r["status"] for r in wrong} == {"wrong_answer"} and all(r["gflops"] is None for r in wrong)
    folder = wrong[0]["reproducer"]
    assert json.loads((tmp_path / folder / "problem.json").read_text())["kind"] == "axpy"
    replay = ukl("repro", folder, "--json")
    assert replay.returncode == 1, replay.stderr  # the failure reproduces
    (line,) = of_type(replay.stdout, "replay")
    assert line["status"] == "wrong_answer" and line["was"] == "wrong_answer"


def test_a_kind_not_registered_is_one_clear_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[experiment]\nkind = "conv9d"\n[[strategy]]\nname = "a"\nmr = 4\nnr = 8\nkc = 16\n')
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "experiment.kind" in proc.stderr and "UKL_PLUGINS" in proc.stderr
    assert not (tmp_path / "r.sqlite").exists()
    with pytest.raises(UnknownKind, match="conv9d"):
        kind_named("conv9d")


def test_the_built_in_kinds_are_registered_with_their_sections():
    assert {"microkernel", "gemm"} <= set(KINDS)
    assert kind_named("gemm").section == "gemm" and kind_named("microkernel").section is None
