"""Sweeps: isolation (crash, hang, wrong answer are statuses), resume after SIGKILL, the tuner, the space."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import pytest

from pipelines.targets import get_target
from runner.candidates import ListSource
from runner.space import KNOBS, SearchSpace, strategy_for, vector_registers_needed
from transforms.errors import StrategyError

from .sabotage_steps import PLUGIN

BASE = '"tile_k", "vectorize", "hoist_accumulators", {}"lower_contraction", "lower_transfers"'

SABOTAGED = textwrap.dedent("""
    [experiment]
    name = "sabotaged"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [defaults]
    kc = 64
    [sweep]
    timeout_seconds = 4
    leaders = 1
    jobs = 2
    [[strategy]]
    name = "good-4x8"
    mr = 4
    nr = 8
    [[strategy]]
    name = "crashes"
    mr = 4
    nr = 8
    steps = [{crash}]
    [[strategy]]
    name = "hangs"
    mr = 4
    nr = 8
    steps = [{hang}]
    [[strategy]]
    name = "good-6x16"
    mr = 6
    nr = 16
    [[strategy]]
    name = "good-8x8"
    mr = 8
    nr = 8
""").format(crash=BASE.format('"test_out_of_bounds_store", '), hang=BASE.format('"test_never_ending", '))


def ukl(*args, env_extra=None, **kwargs):
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, env=env,
                          **kwargs)


def records(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_crash_and_hang_are_recorded_and_the_sweep_goes_on(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(SABOTAGED)
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json")
    assert proc.returncode == 1, proc.stderr  # a crash fails the sweep, after finishing it
    screened = {r["name"]: r for r in records(proc.stdout) if r["phase"] == "screen"}
    assert {n: r["status"] for n, r in screened.items()} == {
        "good-4x8": "ok", "crashes": "crash", "hangs": "timeout", "good-6x16": "ok", "good-8x8": "ok"}
    assert "SIGSEGV" in screened["crashes"]["error"] and "no answer within 4 s" in screened["hangs"]["error"]
    assert screened["crashes"]["gflops"] is None and screened["hangs"]["gflops"] is None
    finals = [r for r in records(proc.stdout) if r["phase"] == "final"]
    assert len(finals) == 1 and finals[0]["status"] == "ok" and finals[0]["samples"] == 10
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT COUNT(*) FROM results WHERE phase != 'rescreen'").fetchone()[0] == 6


SPACE = textwrap.dedent("""
    [experiment]
    name = "grid"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [space]
    mr = [2, 4, 6, 8]
    nr = [8, 16]
    kc = [64]
    unroll = [1, 2]
    [sweep]
    leaders = 2
    jobs = 2
""")


def admitted_on_host(text: str) -> int:
    """How many points of a config's space the host target admits (registers and widths from the table)."""
    from runner.config import _space
    import tomllib
    space, host = _space(tomllib.loads(text)), get_target("host")
    return len(ListSource([], space.grid(), space, host, None, {})._queue)


def test_sigkill_then_resume_measures_only_what_was_missing(tmp_path):
    config, db = tmp_path / "g.toml", tmp_path / "r.sqlite"
    config.write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "sweep", str(config), "--db", str(db), "--json"],
                            stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    first = [json.loads(proc.stdout.readline()) for _ in range(5)]
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-run
    proc.wait()
    kept = {h for (h,) in sqlite3.connect(db).execute("SELECT strategy_hash FROM results WHERE phase = 'screen'")}
    assert {r["strategy_hash"] for r in first} <= kept and len(kept) < admitted_on_host(SPACE)

    resumed = ukl("sweep", str(config), "--db", str(db), "--json", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    again = [r for r in records(resumed.stdout) if r["phase"] == "screen"]
    assert not {r["strategy_hash"] for r in again} & kept  # nothing measured twice
    rows = sqlite3.connect(db).execute("SELECT strategy_hash FROM results WHERE phase = 'screen'").fetchall()
    # every point the host admits (4 x 2 x 2, less tiles that need more registers than it has), once each
    assert len(rows) == len({h for (h,) in rows}) == admitted_on_host(SPACE)
    assert "already measured (--resume)" in resumed.stderr


def test_tuner_sweep_with_a_budget(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text(SPACE.replace("unroll = [1, 2]", 'unroll = [1, 2, 4]\nopt = ["none", "O1"]')
                      .replace("leaders = 2", 'leaders = 1\nmethod = "tuner"\nbudget = 6'))
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json")
    assert proc.returncode == 0, proc.stderr
    screened = [r for r in records(proc.stdout) if r["phase"] == "screen"]
    assert len(screened) == 6 and len({r["strategy_hash"] for r in screened}) == 6
    assert all(r["status"] == "ok" for r in screened)


def test_space_points_build_distinct_valid_strategies():
    space = SearchSpace({"mr": (4, 6), "nr": (8, 16), "schedule": ("as-built", "interleave"),
                         "schedule_distance": (1, 2)})
    target = get_target("znver3")
    source = ListSource([], space.grid(), space, target, None, {})
    # as-built ignores the distance: 4 tiles x (1 + 2) schedules, the duplicates run once
    assert source.total == 12 and len(source.seen) == 12
    assert strategy_for({"mr": 6, "nr": 16, "unroll": 4}).hash == "7e30c592494b1373"  # the BLIS-shaped default


def test_register_constraint_rejects_oversized_tiles_unless_asked_not_to():
    target = get_target("znver3")
    point = {"mr": 8, "nr": 16}
    assert vector_registers_needed({**KNOBS, **point}, 8) == 19
    with pytest.raises(StrategyError, match="needs 19 vector registers, the target has 16"):
        SearchSpace({}).admit(point, target)
    assert SearchSpace({}, fit_registers=False).admit(point, target).kernel.mr == 8


def test_unknown_knob_is_bad_input(tmp_path):
    config = tmp_path / "b.toml"
    config.write_text(SPACE.replace("unroll = [1, 2]", "unrol = [1, 2]"))
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "space.unrol: unknown key (did you mean 'unroll'?)" in proc.stderr
    assert not (tmp_path / "r.sqlite").exists()
