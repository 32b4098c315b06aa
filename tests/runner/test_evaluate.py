"""A wrong kernel is recorded as wrong and never timed; a right one carries its figures."""
from runner.evaluate import evaluate

from ..conftest import FAST_TIMING, best_host_strategy, sabotaged


def test_wrong_kernel_is_reported_incorrect_and_not_timed(host):
    record = evaluate(sabotaged(4, 8, 32), host, FAST_TIMING)
    assert record.status == "wrong_answer"
    assert record.verification is not None and not record.verification.correct
    assert record.measurement is None
    data = record.to_json()
    assert data["correct"] is False and data["gflops"] is None and data["fraction_of_peak"] is None
    assert "expected" in data["error"]


def test_right_kernel_is_timed_with_spread(host):
    record = evaluate(best_host_strategy(), host, FAST_TIMING)
    assert record.status == "ok" and record.verification.correct
    m = record.measurement
    assert len(m.gflops_samples) == 10 and m.minimum <= m.median <= m.maximum and m.cv >= 0
