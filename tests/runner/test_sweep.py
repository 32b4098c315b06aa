"""Sweeps: isolation (crash, hang, wrong answer are statuses), resume after SIGKILL, the tuner, the space."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.targets import get_target
from runner.kinds import kind_named
from runner.search.candidates import ListSource
from runner.search.space import SearchSpace, defaults, knobs_of, strategy_for, vector_registers_needed
from transforms.errors import StrategyError

from .sabotage_steps import PLUGIN
from .jsonl import results
from .test_baselines import LIBRARIES

BASE = '"tile_k", "vectorize", "hoist_accumulators", {}"lower_contraction", "lower_transfers"'

#: Two 4x8 strategies whose kernels segfault and loop forever (tests.runner.sabotage_steps).
SABOTEURS = textwrap.dedent("""
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
""").format(crash=BASE.format('"test_out_of_bounds_store", '), hang=BASE.format('"test_never_ending", '))

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
""") + SABOTEURS + textwrap.dedent("""
    [[strategy]]
    name = "good-6x16"
    mr = 6
    nr = 16
    [[strategy]]
    name = "good-8x8"
    mr = 8
    nr = 8
""")


def ukl(*args, env_extra=None, **kwargs):
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, env=env,
                          **kwargs)


def records(stdout):
    return results(stdout)


@pytest.mark.slow
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
    assert {n for n, r in screened.items() if "reproducer" in r} == {"crashes", "hangs"}
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(),
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    replay = subprocess.run(screened["crashes"]["reproduce"], shell=True, capture_output=True, env=env)
    assert replay.returncode in (-signal.SIGSEGV, 128 + signal.SIGSEGV)  # the replay crashes as the candidate did
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
    from runner.config.experiment import _space
    import tomllib
    space, host = _space(tomllib.loads(text), "microkernel"), get_target("host")
    source = ListSource([], space.grid(), space, host, None, {})
    return sum(1 for _ in iter(source.next, None))


@pytest.mark.slow
def test_sigkill_then_resume_measures_only_what_was_missing(tmp_path):
    config, db = tmp_path / "g.toml", tmp_path / "r.sqlite"
    config.write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "sweep", str(config), "--db", str(db), "--json"],
                            stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert json.loads(proc.stdout.readline())["type"] == "context"
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


@pytest.mark.slow
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
    assert len(list(iter(source.next, None))) == 12 and len(source.seen) == 12
    assert strategy_for({"mr": 6, "nr": 16, "unroll": 4}).hash == "7e30c592494b1373"  # the BLIS-shaped default


def test_register_constraint_rejects_oversized_tiles_unless_asked_not_to():
    target = get_target("znver3")
    point = {"mr": 8, "nr": 16}
    assert vector_registers_needed({**defaults(), **point}, 8) == 19
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


PINNED = [  # points and the hashes the space gave them before knobs were declared with their steps
    ({}, "7e30c592494b1373"),
    ({"legalize": True, "nr": 8, "mr": 12, "unroll": 2, "pipeline": 2, "schedule": "interleave", "prefetch": 16},
     "ad29216e0932191a"),
    ({"c_after_loop": True, "prefetch": 8, "prefetch_locality": 1, "opt": "O2", "codegen_opt": 2}, "f0b175da764ca510"),
    ({"scalar_loads": False, "lowering": "dot", "unroll": "total", "schedule": "random", "schedule_seed": 3},
     "c4d706badc88ff5a"),
    ({"pipeline": 3, "pipeline_carry": "first-step", "machine_scheduler": False, "fast_math": "contract"},
     "430e7eeb52d2c6f8"),
    ({"mr": 4, "nr": 24, "kc": 64, "dtype": "f64", "unroll": 1, "schedule": "loads-first", "vector_bits": 256},
     "19500d306ab9a189"),
    ({"schedule_distance": 5, "pipeline_carry": "first-step"}, "7e30c592494b1373"),  # knobs that do not apply
]


@pytest.mark.parametrize("point,expected", PINNED)
def test_generated_strategies_keep_their_hashes_and_map_back_to_their_knobs(point, expected):
    strategy = strategy_for(point)
    assert strategy.hash == expected
    back = knobs_of(strategy.to_dict())
    assert set(back) == set(defaults())
    assert strategy_for(back).hash == expected  # the reverse mapping loses nothing


@pytest.mark.parametrize("knob,values,message", [
    ("opt", '["O9"]', r"space\.opt: 'O9' is not one of its values \('none', 'O1', 'O2', 'O3'\)"),
    ("mr", "[0]", r"space\.mr: 0 is not one of its values \(integers from 1 to 64\)"),
    ("unroll", '["all"]', r"space\.unroll: 'all' is not one of its values \(integers from 1 to 65536 or 'total'\)"),
    ("legalize", '["yes"]', r"space\.legalize: 'yes' is not one of its values \(False, True\)")])
def test_a_space_value_outside_its_knobs_domain_is_refused_in_one_line(tmp_path, knob, values, message):
    config = tmp_path / "s.toml"
    config.write_text(f"[experiment]\nname = \"domain\"\n[space]\n{knob} = {values}\n")
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert __import__("re").search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.slow
def test_a_plugin_step_with_one_knob_is_swept(tmp_path):
    """tests/runner/knob_plugin.py declares a step and its knob in one module; [space] sweeps it."""
    config = tmp_path / "p.toml"
    config.write_text(SPACE.replace("mr = [2, 4, 6, 8]", "mr = [4]").replace("nr = [8, 16]", "nr = [8]")
                      .replace("unroll = [1, 2]", "unroll = [2]\ncanonicalize = [false, true]"))
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json",
               env_extra={"UKL_PLUGINS": "tests.runner.knob_plugin"})
    assert proc.returncode == 0, proc.stderr
    screened = [r for r in records(proc.stdout) if r["phase"] == "screen"]
    assert sorted(r["name"] for r in screened) == ["4x8x64-f32-sl-u2-O1", "4x8x64-f32-sl-u2-canon-O1"]
    assert all(r["status"] == "ok" for r in screened)
    steps = {r["name"]: [s["step"] for s in r["strategy"]["steps"]] for r in screened}
    assert steps["4x8x64-f32-sl-u2-canon-O1"][-1] == "canonicalize"


@pytest.mark.slow
def test_a_harness_bug_in_a_worker_stops_the_sweep_instead_of_being_a_crash_record(tmp_path):
    config = tmp_path / "b.toml"
    config.write_text(SABOTAGED.replace('"test_out_of_bounds_store", ', '"test_harness_bug", '))
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json")
    assert proc.returncode not in (0, 2)
    assert "HarnessBug: compile raised in a sweep worker" in proc.stderr and "NotImplementedError: a harness bug" in \
        proc.stderr
    assert not [r for r in records(proc.stdout) if r["name"] == "crashes"]


HANGING = SABOTAGED.replace("timeout_seconds = 4", "timeout_seconds = 100")


def _children(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            found.add(int(status.parent.name))
    return found


def _gone(pids: set[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() and "State:\tZ" not in Path(f"/proc/{p}/status").read_text()
                   for p in pids if Path(f"/proc/{p}/status").exists()):
            return True
        time.sleep(0.1)
    return False


def _start_hanging_sweep(tmp_path):
    config = tmp_path / "h.toml"
    config.write_text(HANGING)
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "sweep", str(config), "--db", str(tmp_path / "r.sqlite"),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # the crashing candidate comes back; the hanging one then holds a worker
        if '"crashes"' in line:
            break
    time.sleep(1.5)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_stops_within_seconds_and_kills_its_workers(tmp_path, how):
    proc = _start_hanging_sweep(tmp_path)
    workers = _children(proc.pid)
    started = time.monotonic()
    proc.send_signal(how)
    proc.wait(timeout=20)
    assert time.monotonic() - started < 5, "stopped within a couple of seconds, not the 100 s timeout"
    assert proc.returncode == 128 + how and "interrupted" in proc.stderr.read()
    assert workers and _gone(workers, 5)


@pytest.mark.slow
def test_the_workers_of_a_killed_sweep_die_with_it(tmp_path):
    proc = _start_hanging_sweep(tmp_path)
    workers = _children(proc.pid)
    proc.kill()  # SIGKILL: no cleanup in the parent at all
    proc.wait()
    assert workers and _gone(workers, 5)


def test_a_huge_grid_starts_at_once_and_a_random_search_of_invalid_points_ends():
    """The candidate list is read lazily; a random search meeting only invalid points gives up."""
    big = SearchSpace({"mr": tuple(range(1, 65)), "nr": tuple(range(1, 257)), "kc": tuple(range(1, 1001))})
    assert big.size > 10 ** 7
    started = time.monotonic()
    source = ListSource([], big.grid(), big, get_target("znver3"), None, {})
    assert source.next() is not None and time.monotonic() - started < 2
    invalid = SearchSpace({"mr": tuple(range(10, 65)), "nr": tuple(range(17, 257)), "kc": (64,)})
    source = ListSource([], invalid.shuffled(0), invalid, get_target("znver3"), None, {}, give_up_after=500)
    assert source.next() is None and source.gave_up and sum(source.rejected.values()) == 500



def test_no_child_imports_code_from_the_working_directory(tmp_path):
    """`ukl sweep` run from a folder holding modules named like the harness's own imports none of them."""
    marker = tmp_path / "imported"
    for name in ("multiprocessing", "runner", "pipelines", "transforms"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    config = tmp_path / "s.toml"
    config.write_text(SPACE.replace("mr = [2, 4, 6, 8]", "mr = [4]").replace("nr = [8, 16]", "nr = [8]"))
    ukl_script = Path(sys.executable).parent / "ukl"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    proc = subprocess.run([str(ukl_script), "sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), marker.read_text()


def test_rejections_are_explained_by_reason():
    from collections import Counter
    from runner.search.sweep import rejection_reasons
    rejected = Counter({"needs 19 vector registers, the target has 16": 3,
                        "needs 21 vector registers, the target has 16": 2,
                        "steps[2] (legalize).mr: legalize needs an even mr, got 5": 1})
    assert rejection_reasons(rejected) == ("6 points rejected before compiling (5: needs N vector registers, the "
                                           "target has N; 1: steps[N] (legalize).mr: legalize needs an even mr, got N)")


GEMM_SWEEP = textwrap.dedent("""
    [experiment]
    name = "gemm-sabotaged"
    kind = "gemm"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [gemm]
    shapes = [[13, 37, 64], [40, 16, 64]]
    mc = 8
    nc = 16
    [defaults]
    kc = 32
    [sweep]
    timeout_seconds = 6
    leaders = 1
    jobs = 2
    [space]
    mr = [4]
    nr = [8]
    mc = [8, 16]
    traversal = ["blis", "direct"]
""") + SABOTEURS


@pytest.mark.slow
def test_gemm_sweep_records_crash_and_hang_and_finishes(tmp_path):
    """A GEMM sweep: the listed saboteurs and the space's blocking points, each at both shapes, each
    verified and screened against the baselines; the best point per shape is re-measured."""
    config = tmp_path / "g.toml"
    config.write_text(GEMM_SWEEP)
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json")
    assert proc.returncode == 1, proc.stderr  # a crash fails the sweep, after finishing it
    out = records(proc.stdout)
    screened = [r for r in out if r["phase"] == "screen"]
    statuses = sorted((r["name"].split("@")[0], r["status"]) for r in screened)
    # Two saboteurs and 3 space points (blis mc 8, blis mc 16, direct), each at 2 shapes.
    assert [s for s in statuses if s[0] in ("crashes", "hangs")] == [("crashes", "crash")] * 2 + [("hangs", "timeout")] * 2
    good = [r for r in screened if r["status"] == "ok"]
    assert len(good) == 6 and len({r["gemm_hash"] for r in good}) == 6
    for r in good:
        assert r["gflops"] > 0 and {b["name"] for b in r["baselines"]} == set(LIBRARIES)
        assert all(b["ratio"] > 0 and b["ratio_ci"][0] <= b["ratio"] <= b["ratio_ci"][1] for b in r["baselines"])
    finals = [r for r in out if r["phase"] == "final"]
    assert sorted(tuple(r["shape"]) for r in finals) == [(13, 37, 64), (40, 16, 64)]  # the best per shape
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT COUNT(DISTINCT gemm_hash) FROM results WHERE phase = 'screen'").fetchone()[0] == 10


THREADED_SWEEP = textwrap.dedent("""
    [experiment]
    name = "gemm-threads"
    kind = "gemm"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [gemm]
    shapes = [[37, 41, 29]]
    mc = 8
    nc = 16
    [defaults]
    kc = 16
    [sweep]
    leaders = 1
    jobs = 2
    [space]
    mr = [4]
    nr = [8]
    threads = [1, 2]
    inner = ["ir", "jr"]
    traversal = ["blis"]
""")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two threads need two CPUs")
def test_gemm_sweep_over_threads_and_loop_order(tmp_path):
    """Threads and the register-tile loop order are sweep knobs: every point is verified and timed
    (a two-thread GEMM on every CPU, with no compile beside it) against baselines at its thread count."""
    config = tmp_path / "t.toml"
    config.write_text(THREADED_SWEEP)
    proc = ukl("sweep", str(config), "--db", str(tmp_path / "r.sqlite"), "--json")
    assert proc.returncode == 0, proc.stderr
    screened = [r for r in records(proc.stdout) if r["phase"] == "screen"]
    assert sorted((r["gemm"]["threads"], r["gemm"]["inner"]) for r in screened) == [
        (1, "ir"), (1, "jr"), (2, "ir"), (2, "jr")]
    for r in screened:  # verified; timed, or (under a busy neighbour) measured above its peak and said so
        assert r["status"] in ("ok", "disturbed") and r["correct"] is True
        words = "2 threads" if r["gemm"]["threads"] == 2 else "1 thread"
        assert words in r["baselines"][0]["configuration"]


def test_compile_gate_lets_a_lone_measurement_wait_for_compiles_and_hold_new_ones():
    import threading
    from runner.search.machine_lock import CompileGate
    gate, events = CompileGate(), []
    compiling, measuring = threading.Event(), threading.Event()

    def compile_long():
        with gate.compiling():
            compiling.set()
            time.sleep(0.3)
            events.append("first compile done")

    def measure_alone():
        compiling.wait()
        with gate.alone():
            measuring.set()
            events.append("measured")
            time.sleep(0.3)
            events.append("measurement done")

    def compile_later():
        measuring.wait()
        with gate.compiling():
            events.append("second compile")
    threads = [threading.Thread(target=f) for f in (compile_long, measure_alone, compile_later)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert events == ["first compile done", "measured", "measurement done", "second compile"]


def test_problem_knobs_are_only_for_configs_of_the_kinds_that_have_them():
    with pytest.raises(StrategyError, match=r'space\.mc: a knob of kind "conv2d" or "gemm": only for '
                                            r'experiment\.kind = "conv2d" or "gemm"'):
        SearchSpace({"mc": (48,)})
    with pytest.raises(StrategyError, match=r'space\.route: a knob of kind "conv2d"'):
        SearchSpace({"route": ("igemm",)}, kind=kind_named("gemm"))
    with pytest.raises(StrategyError, match="space.route: .winograd. is not one of its values"):  # its domain
        SearchSpace({"route": ("winograd",)}, kind=kind_named("conv2d"))
    assert SearchSpace({"pack_bytes": (4096,), "route": ("im2col_chunked",)}, kind=kind_named("conv2d")).size == 1


def test_the_tuner_starts_from_the_models_point():
    from runner.search.candidates import TunerSource, model_point
    znver4 = get_target("znver4")
    space = SearchSpace({"mr": (6, 12, 14), "nr": (16, 32), "kc": (128, 256), "unroll": (1, 4)})
    assert model_point(space, znver4) == {"mr": 14, "nr": 32, "kc": 128}
    assert model_point(SearchSpace({"mr": (6, 12), "nr": (16, 32)}), znver4) == {"nr": 32}  # 14 is not offered
    assert model_point(space, get_target("x86-64-v4")) == {}  # no datapath: nothing to start from
    source = TunerSource(space, znver4, 0, 5, [], {})
    first = source.next()
    assert (first.strategy.kernel.mr, first.strategy.kernel.nr, first.strategy.kernel.kc) == (14, 32, 128)
