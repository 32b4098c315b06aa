"""No figure the harness prints can be physically impossible: the peak is sampled in alternation with
each kernel at the kernel's width, a fraction above 1.0 is re-measured and otherwise `disturbed`,
and a busy measuring CPU changes none of that."""
import os
from collections import Counter
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from runner.config.experiment import load
from pipelines.targets import get_target
from runner.measure import trust
from runner.measure.lifecycle import Candidate, evaluate
from runner.measure.timing import measurement_cpu
from runner.search.sweep import Sweep, summary_line
from runner.store.results import Store

from ..conftest import FAST_TIMING, best_host_strategy, strategy


def test_the_peak_is_a_high_percentile_of_its_alternated_samples():
    samples = [100.0] * 8 + [90.0, 110.0]
    assert trust.peak_reference(samples) == pytest.approx(101.0)
    assert trust.fraction(101.0, samples) == pytest.approx(1.0)


@pytest.mark.parametrize("fractions,result,disturbed", [
    ([0.9], 0.9, False), ([1.2, 0.95], 0.95, False), ([1.2, 1.1, 0.99], 0.99, False), ([1.2, 1.3, 1.05], 1.05, True)])
def test_a_fraction_above_one_is_measured_again_then_called_disturbed(fractions, result, disturbed):
    pending = iter(fractions)
    assert trust.until_plausible(lambda: next(pending), lambda f: f) == (result, disturbed)


def test_records_carry_the_peak_at_the_kernels_own_width(host):
    narrow = evaluate(Candidate.microkernel(strategy(8, 8, 64), host), FAST_TIMING)  # vector<8 x f32>: 256 bits on every x86 host
    wide = evaluate(Candidate.microkernel(best_host_strategy(64), host), FAST_TIMING)  # vector<16 x f32>: the host's widest
    assert narrow.vector_bits == 256 and wide.vector_bits == min(512, host.vector_bits)
    for record in (narrow, wide):
        assert record.status in ("ok", "disturbed") and len(record.peak.gflops_samples) == FAST_TIMING.samples
        assert record.status == "disturbed" or record.fraction_of_peak <= 1.0
        assert record.to_json()["peak_gflops"] == pytest.approx(trust.peak_reference(record.peak.gflops_samples))


SPACE = textwrap.dedent("""
    [experiment]
    name = "busy"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [defaults]
    kc = 64
    [[strategy]]
    name = "6x16-u2"
    mr = 6
    nr = 16
    steps = ["tile_k", "vectorize", "hoist_accumulators", "lower_contraction", "lower_transfers",
             "scalar_loads", { step = "unroll_k", factor = 2 }]
    [[strategy]]
    name = "8x8"
    mr = 8
    nr = 8
    [space]
    mr = [4, 6]
    nr = [8, 16]
    kc = [64]
    scalar_loads = [true]
    [sweep]
    leaders = 2
    jobs = 2
""")


@pytest.mark.slow
def test_noisy_screens_are_rescreened_before_leaders_are_chosen(tmp_path, monkeypatch):
    monkeypatch.setattr(trust, "NOISY_CV", -1.0)  # every screen counts as noisy
    config = tmp_path / "s.toml"
    config.write_text(SPACE)
    experiment = load(config)
    with Store(tmp_path / "r.sqlite") as store:
        sweep = Sweep(experiment, get_target(experiment.target), store, experiment.sweep, False)
        records = list(sweep.run())
    screened = {r.strategy.hash for r in records if r.extra["phase"] == "screen" and r.status == "ok"}
    again = [r for r in records if r.extra["phase"] == "rescreen"]
    assert screened and sorted(r.strategy.hash for r in again) == sorted(screened)
    finals = [r for r in records if r.extra["phase"] == "final"]
    assert len(finals) == 2 and all(r.noisy for r in finals)  # marked wherever they are shown
    assert f"{len(again)} noisy screens (cv > -100%) re-screened" in summary_line(records, Counter(), 0)


@pytest.mark.slow
@pytest.mark.timing
def test_a_busy_measuring_cpu_never_yields_an_ok_fraction_above_one(tmp_path):
    config, db = tmp_path / "busy.toml", tmp_path / "r.sqlite"
    config.write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    spin = f"import os\nos.sched_setaffinity(0, {{{measurement_cpu()}}})\nwhile True:\n    pass\n"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        for command in ("run", "sweep"):
            proc = subprocess.run([sys.executable, "-m", "runner.cli", command, str(config), "--db", str(db), "--json"],
                                  capture_output=True, text=True, env=env, timeout=600)
            assert proc.returncode in (0, 1), proc.stderr
    finally:
        busy.kill()
        busy.wait()
    rows = sqlite3.connect(db).execute("SELECT status, fraction_of_peak, phase FROM results").fetchall()
    assert {phase for *_, phase in rows} >= {"full", "screen", "final"}
    assert {status for status, *_ in rows} <= {"ok", "disturbed"}
    assert all(fraction <= 1.0 for status, fraction, _ in rows if status == "ok")


def test_the_placement_floor_calls_identical_kernels_different_5_percent_of_the_time():
    """Simulated A/A: 3 placements of one kernel on each side, normal in log rate. The floor is a 95%
    bound, so the difference of the two means passes it about 5% of the time (2 standard errors
    instead of Student's t with 4 degrees of freedom would pass it about 12% of the time)."""
    import numpy as np
    from runner.measure.stats import placement_floor
    rng = np.random.default_rng(0)
    trials = 20_000
    logs = rng.normal(0.0, 0.01, size=(trials, 2, 3))
    passed = sum(abs(np.expm1(a.mean() - b.mean())) > placement_floor(a, b) for a, b in logs)
    assert 0.04 < passed / trials < 0.06, passed / trials
