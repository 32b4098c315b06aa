"""`ukl compare`: is A faster than B, or is the difference noise?

Each kernel is compiled twice (A, A', B, B': two copies of identical code at different
addresses, with their own operands) and verified, then timed in rounds, one call of each per
round in a rotating order, so drift in clock speed or load hits all alike. Identical code at
another address can run measurably faster or slower (loop alignment, operand placement: about
1% on this machine kind), so the copies measure that *placement* floor, and the ratio of each
round is (A + A') / (B + B'). A bootstrap over rounds gives a 95% confidence interval of the
median ratio; a difference is called real only when the whole interval lies beyond the noise
floor: the larger of the placement floor and MIN_EFFECT.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels_mlir.names import BENCH
from kernels_mlir.reference import make_operands
from pipelines.compile import compile_strategy
from pipelines.targets import Target
from transforms.strategy import Strategy

from .config import ConfigError
from .native import NativeFunction
from .timing import calibrate, pinned_to_one_cpu, seconds_for
from .verify import verify

#: Relative speed differences below this are never called real, whatever the interval says.
MIN_EFFECT = 0.01
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    gflops_a: float
    gflops_b: float
    #: Median over rounds of rate(A) / rate(B), and its bootstrap confidence interval.
    ratio: float
    ci_low: float
    ci_high: float
    #: Relative difference between two copies of the same code (the larger of A/A' and B/B').
    placement_floor: float
    noise_floor: float
    rounds: int
    verdict: str

    @property
    def significant(self) -> bool:
        return not self.verdict.startswith("difference below")

    def to_json(self) -> dict:
        return {**self.__dict__, "significant": self.significant}


def bootstrap_ci(ratios: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ratios), size=(BOOTSTRAP_RESAMPLES, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    tail = (1 - CONFIDENCE) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


def verdict(a: str, b: str, ratio: float, low: float, high: float, floor: float) -> str:
    interval = f"95% CI of the speed ratio {low:.3f}-{high:.3f}, noise floor {100 * floor:.1f}%"
    if low <= 1.0 + floor and high >= 1.0 - floor:
        return f"difference below the noise floor ({interval})"
    faster, slower, r = (a, b, ratio) if ratio > 1 else (b, a, 1 / ratio)
    return f"{faster} is {100 * (r - 1):.1f}% faster than {slower} ({interval})"


def compare(a: Strategy, b: Strategy, target: Target, rounds: int, min_sample_seconds: float) -> Comparison:
    runs = []
    for strategy in (a, b, a, b):
        code = compile_strategy(strategy, target).code
        check = verify(code, strategy.kernel)
        if not check.correct:
            raise ConfigError(f"{strategy.name}: computes a wrong answer ({check.message}); nothing to compare")
        ops = make_operands(strategy.kernel, seed=1)
        runs.append((NativeFunction(code, BENCH, [ops.a, ops.b, ops.c], n_scalars=1), strategy.kernel.flops, ops))
    rates = np.zeros((rounds, len(runs)))
    with pinned_to_one_cpu():
        counts = [calibrate(run, min_sample_seconds) for run, _, _ in runs]
        for r in range(rounds):
            for i in np.roll(np.arange(len(runs)), r):
                run, flops, _ = runs[i]
                rates[r, i] = flops * counts[i] / seconds_for(run, counts[i]) / 1e9
    ratios = (rates[:, 0] + rates[:, 2]) / (rates[:, 1] + rates[:, 3])
    placement = max(abs(float(np.median(rates[:, 0] / rates[:, 2])) - 1),
                    abs(float(np.median(rates[:, 1] / rates[:, 3])) - 1))
    floor = max(placement, MIN_EFFECT)
    ratio = float(np.median(ratios))
    low, high = bootstrap_ci(ratios)
    return Comparison(a.name, b.name, float(np.median(rates[:, [0, 2]])), float(np.median(rates[:, [1, 3]])),
                      ratio, low, high, placement, floor, rounds, verdict(a.name, b.name, ratio, low, high, floor))
