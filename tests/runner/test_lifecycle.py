"""The candidate lifecycle: a wrong kernel is recorded as wrong and never timed, a right one carries its
figures, and exceptions are classified (a harness bug is never a candidate's compile error)."""
from dataclasses import dataclass
from typing import ClassVar

import pytest

from kernels_mlir.spec import KernelSpec
from runner.measure.lifecycle import Candidate, evaluate
from transforms.errors import StepFailed
from transforms.steps import Step
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from ..conftest import FAST_TIMING, best_host_strategy, sabotaged


def test_wrong_kernel_is_reported_incorrect_and_not_timed(host):
    record = evaluate(Candidate.microkernel(sabotaged(4, 8, 32), host), FAST_TIMING)
    assert record.status == "wrong_answer"
    assert record.verification is not None and not record.verification.correct
    assert record.measurement is None
    data = record.to_json()
    assert data["correct"] is False and data["gflops"] is None and data["fraction_of_peak"] is None
    assert "expected" in data["error"]


def test_right_kernel_is_timed_with_spread(host):
    record = evaluate(Candidate.microkernel(best_host_strategy(), host), FAST_TIMING)
    assert record.status == "ok" and record.verification.correct
    m = record.measurement
    assert len(m.gflops_samples) == 10 and m.minimum <= m.median <= m.maximum and m.cv >= 0


@dataclass(frozen=True)
class Raises(Step):
    """A step that raises what it is given: the lifecycle must tell a compile error from a harness bug."""

    kind: ClassVar[str] = "test_raise_given"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    error: type = StepFailed

    def apply(self, module, ctx) -> str:
        raise self.error("raised on purpose")


def test_a_step_that_fails_its_promise_is_a_compile_error(host):
    strategy = Strategy("fails", KernelSpec(4, 8, 16), REGISTER_RESIDENT_STEPS + (Raises(StepFailed),))
    record = evaluate(Candidate.microkernel(strategy, host), FAST_TIMING)
    assert record.status == "compile_error" and record.error == "StepFailed: raised on purpose"


@pytest.mark.parametrize("bug", [NotImplementedError, KeyError, AttributeError, ValueError])
def test_a_harness_bug_is_never_recorded_as_a_compile_error(host, bug):
    strategy = Strategy("bug", KernelSpec(4, 8, 16), REGISTER_RESIDENT_STEPS + (Raises(bug),))
    with pytest.raises(bug):
        evaluate(Candidate.microkernel(strategy, host), FAST_TIMING)


@pytest.mark.parametrize("sabotage,status", [("test_skip_last_k", "wrong_answer"), ("test_raises", "compile_error")])
def test_a_failure_leaves_a_reproducer_whose_command_replays_it(tmp_path, sabotage, status):
    """`ukl run` prints the command; run as printed (in a shell), it reproduces the failure."""
    import os
    import subprocess
    import sys
    from .sabotage_steps import PLUGIN
    config = tmp_path / "f.toml"
    steps = '["tile_k", "vectorize", "hoist_accumulators", "lower_contraction", "lower_transfers", "%s"]' % sabotage
    config.write_text(f'[experiment]\nname = "f"\n[timing]\nmin_sample_seconds = 0.002\n[[strategy]]\n'
                      f'name = "broken"\nmr = 4\nnr = 8\nkc = 16\nsteps = {steps}\n')
    env = {**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd(),
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr
    (line,) = [l for l in proc.stdout.splitlines() if "reproduce with" in l]
    command = line.split("`")[1]
    folder = tmp_path / "repro" / next(p.name for p in (tmp_path / "repro").iterdir())
    assert folder.name.endswith(f"-{status}") and (folder / "strategy.json").exists()
    assert any((folder / "stages").iterdir())  # the stages as far as they got
    replay = subprocess.run(command, shell=True, capture_output=True, text=True, env=env)
    assert replay.returncode == 1, replay.stderr
    assert f": {status} (" in replay.stdout and f"recorded as {status}" in replay.stdout
