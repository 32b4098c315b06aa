"""Search spaces over strategy knobs: a point (one choice per knob) -> a Strategy, plus constraints.

Every knob has a default, so a [space] table lists only what it varies. Knobs that do not
apply to a point (a schedule distance without `interleave`) are reset to their default, so
equivalent points build the same strategy and the sweep runs it once (same hash).
"""
from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass
from typing import Any, Iterator

from kernels_mlir.spec import KernelSpec, SpecError
from pipelines.compile import strategy_lanes
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.knobs import STRATEGY_KNOBS, Knob, Point, strategy_name
from transforms.llvm_options import LLVMOptions
from transforms.steps import STEP_TYPES, Step
from transforms.strategy import Strategy

from runner.kinds import ProblemKind, kind_knobs
from runner.measure.timing import (MAX_SAMPLES, TimingPolicy, check_count, check_sample_seconds,
                                   check_seconds)


def sweep_steps() -> list[type[Step]]:
    """The step types a generated strategy is made of, in the order it applies them (plugins included)."""
    return sorted((cls for cls in STEP_TYPES.values() if cls.sweep_rank is not None), key=lambda c: c.sweep_rank)


def knobs() -> dict[str, Knob]:
    """Every strategy knob by name: the kernel's, width and LLVM ones, then each step's."""
    table = {k.name: k for k in STRATEGY_KNOBS}
    for cls in sweep_steps():
        for knob in cls.knobs:
            if knob.name in table:
                raise StrategyError(f"step {cls.kind!r} declares knob {knob.name!r}, which another knob has")
            table[knob.name] = knob
    return table


def defaults() -> Point:
    return {name: knob.default for name, knob in knobs().items()}


def _normalized(point: Point) -> Point:
    """The point with every knob that does not apply to it reset, so equivalent points are equal."""
    p = {**defaults(), **point}
    for knob in knobs().values():
        if not knob.applies(p):
            p[knob.name] = knob.default
    return p


def strategy_for(point: Point) -> Strategy:
    """The strategy a point stands for (raises StrategyError/SpecError when it is not a valid one);
    GEMM knobs are not the strategy's."""
    p = _normalized({k: v for k, v in point.items() if k in knobs()})
    steps, fragments = [], []
    for cls in sweep_steps():
        step = cls.from_point(p)
        if step is not None:
            steps.append(step)
            fragments += filter(None, [cls.name_fragment(p)])
    llvm = LLVMOptions(opt=p["opt"], codegen_opt=p["codegen_opt"], machine_scheduler=p["machine_scheduler"],
                       fast_math=p["fast_math"])
    return Strategy(strategy_name(p, fragments), KernelSpec(p["mr"], p["nr"], p["kc"], p["dtype"]), tuple(steps),
                    llvm, p["vector_bits"])


def vector_registers_needed(p: Point, lanes: int) -> int:
    """Accumulators (times the copies a step keeps of each) plus one k-step's operands: B vectors and A
    (one broadcast, or A vectors)."""
    b_vectors = -(-p["nr"] // lanes)
    a_registers = 1 if p["scalar_loads"] else -(-p["mr"] // lanes)
    copies = 1
    for cls in sweep_steps():
        if cls.from_point(p) is not None:
            copies *= cls.accumulator_copies(p)
    return p["mr"] * b_vectors * copies + b_vectors + a_registers


@dataclass(frozen=True)
class SearchSpace:
    choices: dict[str, tuple[Any, ...]]
    #: Reject points whose registers_needed exceeds the register file (False: keep them to study spills).
    fit_registers: bool = True
    #: The experiment's problem kind: a space may list its knobs besides the strategy's.
    kind: ProblemKind | None = None

    def __post_init__(self) -> None:
        owners = kind_knobs()
        table = {**knobs(), **{k.name: k for kinds in owners.values() for kind in kinds for k in kind.knobs},
                 **{k.name: k for k in (self.kind.knobs if self.kind is not None else ())}}
        for knob, values in self.choices.items():
            if knob not in table:
                raise StrategyError(f"space.{knob}: unknown knob (known: {', '.join(table)})")
            if knob in owners and self.kind not in owners[knob]:
                names = " or ".join(sorted(f'"{kind.name}"' for kind in owners[knob]))  # not import order
                raise StrategyError(f"space.{knob}: a knob of kind {names}: only for experiment.kind = {names}")
            if not values:
                raise StrategyError(f"space.{knob}: needs at least one choice")
            for value in values:
                table[knob].check(value)

    @property
    def size(self) -> int:
        total = 1
        for values in self.choices.values():
            total *= len(values)
        return total

    def grid(self) -> Iterator[Point]:
        knobs = list(self.choices)
        for combo in itertools.product(*(self.choices[k] for k in knobs)):
            yield dict(zip(knobs, combo))

    def shuffled(self, seed: int) -> Iterator[Point]:
        """Every point once, in a random order (a random search without repeats)."""
        rng = random.Random(seed)
        if self.size <= 200_000:
            points = list(self.grid())
            rng.shuffle(points)
            yield from points
            return
        seen: set[tuple] = set()
        while len(seen) < self.size:
            point = {k: rng.choice(v) for k, v in self.choices.items()}
            key = tuple(point.values())
            if key not in seen:
                seen.add(key)
                yield point

    def admit(self, point: Point, target: Target) -> Strategy:
        """The point's strategy if it is valid for the target and meets the constraints; else raises."""
        try:
            strategy = strategy_for(point)
        except SpecError as exc:
            raise StrategyError(str(exc)) from None
        lanes = strategy_lanes(strategy, target)
        if self.fit_registers:
            needed = vector_registers_needed(_normalized({k: v for k, v in point.items() if k in knobs()}), lanes)
            if needed > target.vector_registers:
                raise StrategyError(f"needs {needed} vector registers, the target has {target.vector_registers}")
        strategy.validate_for(lanes)
        return strategy


METHODS = ("grid", "random", "tuner")


@dataclass(frozen=True)
class SweepSettings:
    """The [sweep] section; the CLI can override method, budget, time, jobs."""

    method: str = "grid"
    #: At most this many candidates are evaluated (None: the whole grid; random/tuner need it or a time).
    budget: int | None = None
    time_seconds: float | None = None
    seed: int = 0
    #: Compile workers (measurements still run one at a time); None: one per allowed CPU.
    jobs: int | None = None
    #: Per candidate and phase (compile, then verify + measure); beyond it the worker is killed.
    timeout_seconds: float = 60.0
    #: Short first-pass measurement of every candidate, then the leaders at the config's [timing].
    screen: TimingPolicy = TimingPolicy(min_sample_seconds=0.004, samples=10)
    leaders: int = 5

    def __post_init__(self) -> None:
        """Every number finite and bounded: a huge value would hang or exhaust the machine."""
        if self.method not in METHODS:
            raise StrategyError(f"sweep.method: must be one of {list(METHODS)}, got {self.method!r}")
        try:
            for name, low, high in (("budget", 1, MAX_BUDGET), ("jobs", 1, max_jobs()), ("leaders", 0, 1000),
                                    ("seed", 0, 2 ** 32 - 1)):
                if getattr(self, name) is not None:
                    check_count(getattr(self, name), low, high, f"sweep.{name}")
            check_count(self.screen.samples, 5, MAX_SAMPLES, "sweep.screen_samples")
            check_sample_seconds(self.screen.min_sample_seconds, "sweep.screen_min_sample_seconds")
            check_seconds(self.timeout_seconds, MAX_TIMEOUT_SECONDS, "sweep.timeout_seconds")
            if self.time_seconds is not None:
                check_seconds(self.time_seconds, MAX_SWEEP_SECONDS, "sweep.time_seconds")
        except ValueError as exc:
            raise StrategyError(str(exc)) from None


#: Upper bounds of a sweep's numbers: beyond them a typo, not a plan.
MAX_BUDGET = 1_000_000
MAX_TIMEOUT_SECONDS = 3600.0
MAX_SWEEP_SECONDS = 30 * 24 * 3600.0


def max_jobs() -> int:
    """At most four compile workers per CPU this process may use."""
    return 4 * (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def knobs_of(strategy: dict[str, Any]) -> Point:
    """The knob values a stored strategy (its JSON form) shows, whoever built it: for the report."""
    steps = {s["step"]: s for s in strategy.get("steps", [])}
    llvm = {**LLVMOptions().to_dict(), **strategy.get("llvm", {})}
    sources = {**llvm, "vector_bits": strategy.get("vector_bits"), **strategy["kernel"]}
    values = {k.name: sources.get(k.name, k.default) for k in STRATEGY_KNOBS}
    for cls in sweep_steps():
        values.update(cls.point_of(steps.get(cls.kind)))
    return values
