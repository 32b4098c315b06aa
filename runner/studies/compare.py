"""`ukl compare`: is A faster than B, or is the difference noise?

A and B are two candidates: two strategies' micro-kernels, or two variants of a problem kind's
candidates on one workload (`ProblemKind.variant`: a small GEMM with and without an allocation per
call, say). Each is compiled COPIES times (identical code at different addresses, each with its own
operands) and verified, then all copies are timed in rounds, one call of each per round in a
rotating order, so drift in clock speed or load hits all alike. Identical code at another
address can run measurably faster or slower (loop alignment, operand placement: 1-3% on this
machine kind), so the spread between copies of the same kernel measures a *placement* floor:
a 95% bound (Student's t times the standard error) on the difference of two means of COPIES placements. The ratio of a
round is mean(A copies) / mean(B copies); a bootstrap over rounds gives a 95% interval of the
median ratio, and a difference is called real only when the whole interval lies beyond the
noise floor: the larger of the placement floor and MIN_EFFECT. For a kind timed per call, the
difference in ns per call (B minus A, per round) gets its own interval beside the ratio.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kernels_mlir.problem import Problem
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.config.experiment import ConfigError
from runner.kinds import kind_of, launch
from runner.measure.lifecycle import Candidate, build_or_record
from runner.measure.record import Record
from runner.measure.stats import MIN_EFFECT, bootstrap_ci, placement_floor
from runner.measure.timing import alternated_rates, pinned_to_one_cpu
from runner.measure.verify import verify

#: Compiled copies of each kernel: the placement floor is estimated from their spread.
COPIES = 3


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a strategy on a problem, under the name the user gave it."""

    name: str
    strategy: Strategy
    problem: Problem

    @classmethod
    def microkernel(cls, strategy: Strategy) -> "Side":
        return cls(strategy.name, strategy, strategy.kernel)


def pairs(strategies: tuple[Strategy, ...], problems_of: Callable[[Strategy], list], a: str,
          b: str) -> list[tuple[Side, Side]]:
    """(A, B) on each workload both variants have, in the config's order: variants are named by their
    kind (a micro-kernel's is its strategy's name); ConfigError naming a variant no candidate has."""
    found: dict[str, dict[str, Side]] = {a: {}, b: {}}
    for strategy in strategies:
        for problem in problems_of(strategy):
            variant = kind_of(problem).variant(strategy, problem)
            if variant in found:
                found[variant].setdefault(_workload(problem), Side(variant, strategy, problem))
    for name, sides in found.items():
        if not sides:
            known = sorted({kind_of(p).variant(s, p) for s in strategies for p in problems_of(s)})
            raise ConfigError(f"{name!r}: no candidate of the config is this variant (its variants: "
                              f"{', '.join(known)})")
    both = [w for w in found[a] if w in found[b]]
    if not both:
        raise ConfigError(f"{a!r} and {b!r} share no workload: nothing to compare")
    return [(found[a][w], found[b][w]) for w in both]


def _workload(problem: Problem) -> str:
    return json.dumps(problem.workload(), sort_keys=True)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    #: What both computed (the problem's workload, JSON).
    workload: str
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
    #: For a kind timed per call: each side's median ns per call, and B's minus A's with its 95% interval.
    ns_a: float | None = None
    ns_b: float | None = None
    ns_difference: float | None = None
    ns_difference_ci: tuple[float, float] | None = None

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


def compare(a: Side, b: Side, target: Target, rounds: int, min_sample_seconds: float,
            on_round: Callable[[float], None] | None = None) -> Comparison:
    """`on_round` gets the running median speed ratio of A to B after each alternated round."""
    runs = []
    for side in (a, b) * COPIES:
        built = build_or_record(Candidate(side.strategy, side.problem, target))
        if isinstance(built, Record):
            raise ConfigError(f"{side.name}: does not compile ({built.error}); nothing to compare")
        check = verify(built.code, side.problem)
        if not check.correct:
            raise ConfigError(f"{side.name}: computes a wrong answer ({check.message}); nothing to compare")
        ops = side.problem.operands(seed=1)
        runs.append((launch(built.code, side.problem, ops, bench=True), side.problem.flops, ops))

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
    per_call = {}
    if kind_of(a.problem).per_call:
        ns_a, ns_b = a.problem.flops / side_a, b.problem.flops / side_b  # rates are flop per ns
        differences = ns_b.mean(axis=1) - ns_a.mean(axis=1)
        d_low, d_high = bootstrap_ci(differences)
        per_call = {"ns_a": float(np.median(ns_a)), "ns_b": float(np.median(ns_b)),
                    "ns_difference": float(np.median(differences)), "ns_difference_ci": (d_low, d_high)}
    text = verdict(a.name, b.name, ratio, low, high, floor)
    if per_call:  # the same verdict, in ns: the floor is the noise floor's share of A's time
        text += (f"; {b.name} minus {a.name}: {per_call['ns_difference']:+.1f} ns per call "
                 f"(95% CI {d_low:+.1f} to {d_high:+.1f} ns, noise floor ±{floor * per_call['ns_a']:.2g} ns)")
    return Comparison(a.name, b.name, _workload(a.problem), float(np.median(side_a)), float(np.median(side_b)),
                      ratio, low, high, placement, floor, rounds, text, **per_call)
