"""`ukl compare`: is A faster than B, or is the difference noise?

Each kernel is compiled COPIES times (identical code at different addresses, each with its own
operands) and verified, then all copies are timed in rounds, one call of each per round in a
rotating order, so drift in clock speed or load hits all alike. Identical code at another
address can run measurably faster or slower (loop alignment, operand placement: 1-3% on this
machine kind), so the spread between copies of the same kernel measures a *placement* floor:
a 95% bound (Student's t times the standard error) on the difference of two means of COPIES placements. The ratio of a
round is mean(A copies) / mean(B copies); a bootstrap over rounds gives a 95% interval of the
median ratio, and a difference is called real only when the whole interval lies beyond the
noise floor: the larger of the placement floor and MIN_EFFECT.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kernels_mlir.names import BENCH
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.config.experiment import ConfigError
from runner.measure.lifecycle import Candidate, build_or_record
from runner.measure.native import NativeFunction
from runner.measure.record import Record
from runner.measure.stats import MIN_EFFECT, bootstrap_ci, placement_floor
from runner.measure.timing import alternated_rates, pinned_to_one_cpu
from runner.measure.verify import verify

#: Compiled copies of each kernel: the placement floor is estimated from their spread.
COPIES = 3


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


def verdict(a: str, b: str, ratio: float, low: float, high: float, floor: float) -> str:
    interval = f"95% CI of the speed ratio {low:.3f}-{high:.3f}, noise floor {100 * floor:.1f}%"
    if low <= 1.0 + floor and high >= 1.0 - floor:
        return f"difference below the noise floor ({interval})"
    faster, slower, r = (a, b, ratio) if ratio > 1 else (b, a, 1 / ratio)
    return f"{faster} is {100 * (r - 1):.1f}% faster than {slower} ({interval})"


def compare(a: Strategy, b: Strategy, target: Target, rounds: int, min_sample_seconds: float,
            on_round: Callable[[float], None] | None = None) -> Comparison:
    """`on_round` gets the running median speed ratio of A to B after each alternated round."""
    runs = []
    for strategy in (a, b) * COPIES:
        built = build_or_record(Candidate.microkernel(strategy, target))
        if isinstance(built, Record):
            raise ConfigError(f"{strategy.name}: does not compile ({built.error}); nothing to compare")
        check = verify(built.code, strategy.kernel)
        if not check.correct:
            raise ConfigError(f"{strategy.name}: computes a wrong answer ({check.message}); nothing to compare")
        ops = strategy.kernel.operands(seed=1)
        runs.append((NativeFunction(built.code, BENCH, [ops.a, ops.b, ops.c], n_scalars=1), strategy.kernel.flops,
                     ops))
    def report(so_far: np.ndarray) -> None:
        if on_round is not None:
            on_round(float(np.median(so_far[:, 0::2].mean(axis=1) / so_far[:, 1::2].mean(axis=1))))

    with pinned_to_one_cpu():
        rates, _ = alternated_rates([run for run, _, _ in runs], [flops for _, flops, _ in runs], min_sample_seconds,
                                    rounds, report)
    side_a, side_b = rates[:, 0::2], rates[:, 1::2]
    ratios = side_a.mean(axis=1) / side_b.mean(axis=1)
    placement = placement_floor(np.log(np.median(side_a, axis=0)), np.log(np.median(side_b, axis=0)))
    floor = max(placement, MIN_EFFECT)
    ratio = float(np.median(ratios))
    low, high = bootstrap_ci(ratios)
    return Comparison(a.name, b.name, float(np.median(side_a)), float(np.median(side_b)),
                      ratio, low, high, placement, floor, rounds, verdict(a.name, b.name, ratio, low, high, floor))
