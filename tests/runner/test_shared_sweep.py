"""Sweeps shared through a real PostgreSQL server: workers pull candidates from one study, a killed
worker's candidate is retried by another, results are written once, a lost server is one line."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest

from pipelines.targets import get_target
from runner.measure.environment import host_kind
from runner.store.results import Store

from .sabotage_steps import PLUGIN

SHARED = textwrap.dedent("""
    [experiment]
    name = "shared"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [space]
    mr = [4, 6]
    nr = [8, 16]
    kc = [64]
    unroll = [1, 4]
    [sweep]
    timeout_seconds = 60
    leaders = 2
    jobs = 1
    [[strategy]]
    name = "slow-4x8"
    mr = 4
    nr = 8
    kc = 64
    steps = ["tile_k", "vectorize", "hoist_accumulators", {step = "test_slow_compile", seconds = SLOW},
             "lower_contraction", "lower_transfers"]
""")
#: The grid's 8 points and the listed slow strategy.
CANDIDATES = 9


def config(tmp_path, slow=6.0, name="s.toml", text=SHARED):
    path = tmp_path / name
    path.write_text(text.replace("SLOW", str(slow)))
    return path


def worker(path, url, study, *extra, env=None, **popen):
    env = env or {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen([sys.executable, "-m", "runner.cli", "sweep", str(path), "--db", url, "--study", study,
                             "--heartbeat", "1", "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **popen)


def screen_study(url, study):
    from runner.store.database import Database
    storage = optuna.storages.RDBStorage(Database(url).url_text)
    return optuna.load_study(study_name=f"{study}|screen|{host_kind(get_target('host'))}", storage=storage)


def running_slow_worker(url, study, timeout=60.0):
    """The pid of the worker measuring the slow candidate, once one has claimed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for trial in screen_study(url, study).get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if "slow-4x8" in trial.user_attrs.get("ukl:candidate", "") and "ukl:worker" in trial.user_attrs:
                    return int(trial.user_attrs["ukl:worker"].rsplit(":", 1)[1])
        except KeyError:  # the study is not created yet
            pass
        time.sleep(0.2)
    raise AssertionError("no worker claimed the slow candidate")


@pytest.mark.slow
def test_three_workers_one_killed_every_candidate_screened_once_and_leaders_remeasured(tmp_path, pg_url):
    path = config(tmp_path)
    workers = [worker(path, pg_url, "three") for _ in range(3)]
    victim = running_slow_worker(pg_url, "three")
    os.kill(victim, signal.SIGKILL)
    outputs = {}
    for w in workers:
        out, err = w.communicate(timeout=240)
        outputs[w.pid] = (w.returncode, err)
    assert outputs[victim][0] == -signal.SIGKILL
    for pid, (code, err) in outputs.items():
        if pid != victim:
            assert code == 0, err
    with Store(pg_url, readonly=True) as store:
        rows = list(store.rows(study="three"))
    screens = [r for r in rows if r["phase"] == "screen"]
    keys = [r["gemm_hash"] or r["strategy_hash"] for r in screens]
    assert len(screens) == CANDIDATES and len(set(keys)) == CANDIDATES  # each exactly once
    assert all(r["status"] == "ok" for r in screens), [(r["name"], r["status"], r["error"]) for r in screens]
    assert any(r["name"] == "slow-4x8" for r in screens)  # the killed worker's candidate, retried by another
    finals = [r for r in rows if r["phase"] == "final"]
    best = sorted((r for r in rows if r["phase"] in ("screen", "rescreen")), key=lambda r: -r["gflops"])
    assert len(finals) == 2 and {r["strategy_hash"] for r in finals} <= {r["strategy_hash"] for r in best}
    retried = [t for t in screen_study(pg_url, "three").get_trials() if "failed_trial" in t.system_attrs]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.slow
def test_a_worker_with_another_config_is_refused_in_one_line(tmp_path, pg_url):
    first = worker(config(tmp_path, slow=0.0), pg_url, "cfg")
    assert first.wait(timeout=240) == 0, first.stderr.read()
    other = worker(config(tmp_path, slow=0.0, name="other.toml", text=SHARED.replace("leaders = 2", "leaders = 3")),
                   pg_url, "cfg")
    out, err = other.communicate(timeout=60)
    assert other.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--study cfg: was started with another config" in err


@pytest.mark.slow
def test_the_server_going_away_is_retried_then_one_line(tmp_path):
    from ..pg_cluster import Cluster
    cluster = Cluster().start()
    try:
        url = cluster.create_database("away")
        w = worker(config(tmp_path, slow=4.0), url, "away", "--reconnect", "5")
        running_slow_worker(url, "away")
        cluster.stop()  # mid-candidate: the result cannot be written, the trial cannot be told
        out, err = w.communicate(timeout=120)
        lines = [line for line in err.splitlines() if "Traceback" not in line]
        assert w.returncode == 2 and "Traceback" not in err, err
        assert "retrying in" in err  # it waited, with backoff, before giving up
        assert lines[-1].startswith("ukl: error: postgresql://ukl@/away") and "no answer for 5 s" in lines[-1]
        cluster.start()  # what was written before is kept, and the sweep resumes where it stopped
        with Store(url, readonly=True) as store:
            before = list(store.rows(study="away"))
        again = worker(config(tmp_path, slow=4.0), url, "away", "--resume")
        out, err = again.communicate(timeout=240)
        assert again.returncode == 0, err
        with Store(url, readonly=True) as store:
            rows = list(store.rows(study="away"))
        assert rows[:len(before)] == before
        assert len([r for r in rows if r["phase"] == "screen"]) == CANDIDATES
        assert len([r for r in rows if r["phase"] == "final"]) == 2
    finally:
        cluster.destroy()


def test_a_result_is_stored_once_per_study_candidate_host_kind_and_phase(pg_url, host):
    from runner.measure.lifecycle import Candidate, evaluate
    from ..conftest import FAST_TIMING, best_host_strategy
    record = evaluate(Candidate.microkernel(best_host_strategy(64), host), FAST_TIMING)
    with Store(pg_url) as store:
        run = store.start_run("test", host)
        assert store.add(run, record, host, phase="screen", study="once")
        assert not store.add(run, record, host, phase="screen", study="once")  # a retried worker's second write
        assert store.add(run, record, host, phase="final", study="once")
        assert store.add(run, record, host, phase="screen")  # outside a study, every run is kept
        assert store.add(run, record, host, phase="screen")
        rows = list(store.rows())
    assert [(r["phase"], r["study"]) for r in rows] == [("screen", "once"), ("final", "once"), ("screen", None),
                                                        ("screen", None)]
    assert json.loads(rows[0]["record_json"])["gflops"] == record.to_json()["gflops"]


@pytest.mark.parametrize("args, message", [
    (["--study", "x"], "--study: shared sweeps need a database server for --db (a postgresql:// URL)"),
    (["--db", "postgresql://nobody@/nowhere?host=/nonexistent"], "--db: a server takes shared sweeps: name the study"),
    (["--study", "a|b"], "a study name: must be a plain name"),
    (["--db", "mysql://x/y", "--study", "x"], "unsupported database URL"),
])
def test_bad_shared_sweep_arguments_are_one_line(tmp_path, args, message):
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(config(tmp_path)), "--db",
                           str(tmp_path / "r.sqlite"), *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "r.sqlite").exists()


TWO = textwrap.dedent("""
    [experiment]
    name = "two-kinds"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [defaults]
    kc = 64
    [sweep]
    leaders = 1
    jobs = 1
    [[strategy]]
    name = "a-4x8"
    mr = 4
    nr = 8
    vector_bits = 256
    [[strategy]]
    name = "b-6x16"
    mr = 6
    nr = 16
    vector_bits = 256
""")


@pytest.mark.slow
def test_two_kinds_of_host_each_measure_everything_and_the_report_puts_them_side_by_side(tmp_path, pg_url):
    """An AVX2-capped worker (UKL_HOST_ISA=avx2) is another kind of host: it never measures for the
    uncapped one, and the report shows each kind's best beside the other's."""
    path = tmp_path / "two.toml"
    path.write_text(TWO)
    uncapped = {k: v for k, v in os.environ.items() if k != "UKL_HOST_ISA"}  # `make test-avx2` caps the suite
    plain = worker(path, pg_url, "two", env={**uncapped, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd()})
    capped = worker(path, pg_url, "two", env={**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(),
                                              "UKL_HOST_ISA": "avx2"})
    for w in (plain, capped):
        out, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    with Store(pg_url, readonly=True) as store:
        rows = list(store.rows(study="two"))
    kinds = {r["host_kind"] for r in rows}
    assert len(kinds) == 2 and any("capped to avx2" in k for k in kinds)
    for kind in kinds:
        screens = [r for r in rows if r["host_kind"] == kind and r["phase"] == "screen"]
        assert sorted(r["name"] for r in screens) == ["a-4x8", "b-6x16"]
        assert len([r for r in rows if r["host_kind"] == kind and r["phase"] == "final"]) == 1
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    report = subprocess.run([sys.executable, "-m", "runner.cli", "report", "--db", pg_url], capture_output=True,
                            text=True, env=env)
    assert report.returncode == 0, report.stderr
    assert "best strategy per kind of host" in report.stdout and "capped to avx2" in report.stdout
    report = subprocess.run([sys.executable, "-m", "runner.cli", "report", "--db", pg_url, "--json"],
                            capture_output=True, text=True, env=env)
    from .jsonl import of_type
    best = of_type(report.stdout, "best_per_host")
    assert {b["host"] for b in best} == kinds and {b["experiment"] for b in best} == {"two-kinds"}
    # Each kind's best is its own leader's final figure (which strategy leads is a measurement: a loaded
    # machine may rank them either way, so that is not asserted here).
    finals = {r["host_kind"]: r["name"] for r in rows if r["phase"] == "final"}
    assert {b["host"]: b["name"] for b in best} == finals


@pytest.mark.slow
def test_two_workers_share_one_tpe_study(tmp_path, pg_url):
    """method = "tuner": the screening study is Optuna's TPE study on the server; both workers ask it,
    the budget holds across them, and no candidate is screened twice."""
    text = SHARED.replace("[sweep]", '[sweep]\nmethod = "tuner"\nbudget = 6')
    text = text[:text.index("[[strategy]]")]  # the space alone
    path = tmp_path / "tuner.toml"
    path.write_text(text.replace("kc = [64]", "kc = [64, 128]"))
    workers = [worker(path, pg_url, "tpe") for _ in range(2)]
    for w in workers:
        out, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    with Store(pg_url, readonly=True) as store:
        rows = list(store.rows(study="tpe"))
    keys = [r["strategy_hash"] for r in rows if r["phase"] == "screen"]
    # Each worker checks the budget before asking: two that ask at once may go one over it
    assert 1 <= len(keys) <= 6 + 1 and len(set(keys)) == len(keys)
    assert len([r for r in rows if r["phase"] == "final"]) == min(2, len(keys))
    trials = screen_study(pg_url, "tpe").get_trials()
    measured = [t for t in trials if "ukl:candidate" in t.user_attrs and t.state == optuna.trial.TrialState.COMPLETE]
    assert len(measured) >= len(keys) and all(t.value > 0 for t in measured)
    assert all(t.params.keys() == {"mr", "nr", "kc", "unroll"} for t in measured)  # proposed by TPE, not queued


def test_a_server_that_does_not_answer_at_start_is_one_line_at_once(pg_cluster):
    """A wrong URL (here: a database that does not exist) is not waited for: one line, exit 2."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "report", "--db", pg_cluster.url("no_such_db")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'database "no_such_db" does not exist' in proc.stderr
    assert time.monotonic() - started < 20


def test_reporting_from_an_empty_database_writes_nothing_there(pg_url):
    import sqlalchemy
    from runner.store.database import Database
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "report", "--db", pg_url], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and "holds no ukl results yet" in proc.stderr and proc.stderr.count("\n") == 1
    engine = sqlalchemy.create_engine(Database(pg_url).url)
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()


@pytest.mark.slow
def test_resume_finishes_a_queue_whose_creator_died_while_filling_it(tmp_path, pg_url):
    """The screening study exists but was never marked ready (its creator was killed while queueing):
    a worker started with --resume fills it and runs the sweep to the end."""
    from runner.config.experiment import load
    from runner.search.shared import CONFIG, config_fingerprint
    from runner.store.database import Database
    path = config(tmp_path, slow=0.0)
    experiment = load(path)
    storage = optuna.storages.RDBStorage(Database(pg_url).url_text)
    anchor = optuna.create_study(study_name="orphan", storage=storage)
    anchor.set_user_attr(CONFIG, config_fingerprint(experiment, experiment.sweep))
    optuna.create_study(study_name=f"orphan|screen|{host_kind(get_target('host'))}", storage=storage,
                        direction="maximize")  # created, never filled, never marked ready
    proc = worker(path, pg_url, "orphan", "--resume")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    with Store(pg_url, readonly=True) as store:
        rows = list(store.rows(study="orphan"))
    assert len([r for r in rows if r["phase"] == "screen"]) == CANDIDATES
    assert len([r for r in rows if r["phase"] == "final"]) == 2
    assert screen_study(pg_url, "orphan").user_attrs["ukl:ready"] == CANDIDATES
