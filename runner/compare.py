"""`ukl compare`: is A faster than B, or is the difference noise?

Each kernel is compiled COPIES times (identical code at different addresses, each with its own
operands) and verified, then all copies are timed in rounds, one call of each per round in a
rotating order, so drift in clock speed or load hits all alike. Identical code at another
address can run measurably faster or slower (loop alignment, operand placement: 1-3% on this
machine kind), so the spread between copies of the same kernel measures a *placement* floor:
about two standard errors of the difference of two means of COPIES placements. The ratio of a
round is mean(A copies) / mean(B copies); a bootstrap over rounds gives a 95% interval of the
median ratio, and a difference is called real only when the whole interval lies beyond the
noise floor: the larger of the placement floor and MIN_EFFECT.
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
from .timing import alternated_rates, pinned_to_one_cpu
from .verify import verify

#: Relative speed differences below this are never called real, whatever the interval says.
MIN_EFFECT = 0.01
#: Compiled copies of each kernel: the placement floor is estimated from their spread.
COPIES = 3
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
    #: Relative difference that placement alone produces between two means of COPIES copies (~95%).
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
    for strategy in (a, b) * COPIES:
        code = compile_strategy(strategy, target).code
        check = verify(code, strategy.kernel)
        if not check.correct:
            raise ConfigError(f"{strategy.name}: computes a wrong answer ({check.message}); nothing to compare")
        ops = make_operands(strategy.kernel, seed=1)
        runs.append((NativeFunction(code, BENCH, [ops.a, ops.b, ops.c], n_scalars=1), strategy.kernel.flops, ops))
    with pinned_to_one_cpu():
        rates, _ = alternated_rates([run for run, _, _ in runs], [flops for _, flops, _ in runs], min_sample_seconds,
                                 rounds)
    side_a, side_b = rates[:, 0::2], rates[:, 1::2]
    ratios = side_a.mean(axis=1) / side_b.mean(axis=1)
    placement = placement_floor(np.log(np.median(side_a, axis=0)), np.log(np.median(side_b, axis=0)))
    floor = max(placement, MIN_EFFECT)
    ratio = float(np.median(ratios))
    low, high = bootstrap_ci(ratios)
    return Comparison(a.name, b.name, float(np.median(side_a)), float(np.median(side_b)),
                      ratio, low, high, placement, floor, rounds, verdict(a.name, b.name, ratio, low, high, floor))


def placement_floor(log_a: np.ndarray, log_b: np.ndarray) -> float:
    """Two standard errors of the difference of two means of k placements, from the pooled spread
    of the copies' log median rates around their own kernel's mean."""
    k = len(log_a)
    pooled = (np.sum((log_a - log_a.mean()) ** 2) + np.sum((log_b - log_b.mean()) ** 2)) / (2 * (k - 1))
    return float(np.expm1(2 * np.sqrt(pooled) * np.sqrt(2 / k)))
