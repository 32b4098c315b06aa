"""Timing inside native code: each sample is one call of a generated loop, sized to last >= a minimum.

A sample's duration includes one ctypes call (about 1 us), under 0.01% of the default 50 ms.
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: Defaults of the [timing] section of a config, and the bounds of every sample length and count.
MIN_SAMPLE_SECONDS = 0.05
SAMPLES = 10
MAX_SAMPLE_SECONDS = 10.0
MIN_SAMPLE_FLOOR = 0.001
MAX_SAMPLES = 1000
#: Fewer alternated rounds than this and a bootstrap interval means nothing.
MIN_ROUNDS = 10


def check_seconds(value: float, high: float, where: str, low: float = 0.0) -> float:
    """A duration: finite, above `low` (or equal to it when low > 0), at most `high` seconds
    (ValueError naming `where`)."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (low < value or 0 < low == value) and value <= high):
        bounds = f"[{low:g}, {high:g}]" if low else f"(0, {high:g}]"
        raise ValueError(f"{where}: must be a number of seconds in {bounds}, got {value!r}")
    return float(value)


def check_sample_seconds(value: float, where: str) -> float:
    """A sample length: long enough that the one ctypes call per sample (about 1 us) stays below 0.1%."""
    return check_seconds(value, MAX_SAMPLE_SECONDS, where, low=MIN_SAMPLE_FLOOR)


def check_count(value: int, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: must be an integer from {low} to {high}, got {value!r}")
    return value


@dataclass(frozen=True)
class TimingPolicy:
    min_sample_seconds: float = MIN_SAMPLE_SECONDS
    samples: int = SAMPLES


@dataclass(frozen=True)
class Measurement:
    """Per-sample rates in GFLOP/s and the work per sample, with the summary statistics."""

    gflops_samples: tuple[float, ...]
    iterations: int
    flops_per_iteration: int

    @property
    def median(self) -> float:
        return statistics.median(self.gflops_samples)

    @property
    def minimum(self) -> float:
        return min(self.gflops_samples)

    @property
    def maximum(self) -> float:
        return max(self.gflops_samples)

    @property
    def cv(self) -> float:
        """Coefficient of variation (stdev / mean) of the samples."""
        mean = statistics.fmean(self.gflops_samples)
        return statistics.stdev(self.gflops_samples) / mean if len(self.gflops_samples) > 1 else 0.0


def seconds_for(run: Callable[[int], None], iterations: int) -> float:
    started = time.perf_counter()
    run(iterations)
    return time.perf_counter() - started


def calibrate(run: Callable[[int], None], min_seconds: float) -> int:
    """Smallest iteration count (roughly) whose call lasts >= min_seconds; also warms up."""
    iterations = 1
    while True:
        elapsed = seconds_for(run, iterations)
        if elapsed >= min_seconds:
            return iterations
        if elapsed < min_seconds / 100:
            iterations *= 10
        else:
            iterations = int(iterations * 1.2 * min_seconds / elapsed) + 1


def measurement_cpu() -> int | None:
    """The CPU measurements run on: the last allowed one, which takes fewer interrupts than CPU 0."""
    return max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


@contextlib.contextmanager
def pinned_to_one_cpu(cpu: int | set[int] | None = None):
    """Keep the measuring thread on one CPU (default: measurement_cpu()): a migration mid-sample
    would cost cold caches. A set of CPUs for a multi-threaded measurement: the threads a library
    starts inherit it (ours pin themselves one per CPU, runner.measure.parallel)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu if isinstance(cpu, set) else {measurement_cpu() if cpu is None else cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def measure(run: Callable[[int], None], flops_per_iteration: int, policy: TimingPolicy,
            cpu: int | None = None) -> Measurement:
    """`run(n)` executes n iterations in native code. Warm-up, then `policy.samples` timed calls."""
    with pinned_to_one_cpu(cpu):
        iterations = calibrate(run, policy.min_sample_seconds)
        seconds_for(run, iterations)  # warm-up at full sample length (caches, frequency)
        rates = []
        for _ in range(policy.samples):
            rates.append(flops_per_iteration * iterations / seconds_for(run, iterations) / 1e9)
    return Measurement(tuple(rates), iterations, flops_per_iteration)


def alternated_rates(runs: Sequence[Callable[[int], None]], flops: Sequence[int], min_sample_seconds: float,
                     rounds: int, on_round: Callable[[np.ndarray], None] | None = None) -> tuple[np.ndarray, list[int]]:
    """GFLOP/s of several codes timed in alternation (rounds x len(runs), one sample of each per
    round) and the iterations per sample of each. `on_round` gets the rounds measured so far after
    each round (for live progress).

    The order rotates each round, so drift in clock speed or load hits every run alike. Call it
    pinned to a CPU (and with any thread limits) as the caller needs.
    """
    counts = [calibrate(run, min_sample_seconds) for run in runs]
    for run, count in zip(runs, counts):  # warm-up at full sample length (caches, clock)
        seconds_for(run, count)
    rates = np.zeros((rounds, len(runs)))
    for r in range(rounds):
        for i in np.roll(np.arange(len(runs)), r):
            rates[r, i] = flops[i] * counts[i] / seconds_for(runs[i], counts[i]) / 1e9
        if on_round is not None:
            on_round(rates[:r + 1])
    return rates, counts
