"""Search spaces over strategy knobs: a point (one choice per knob) -> a Strategy, plus constraints.

Every knob has a default, so a [space] table lists only what it varies. Knobs that do not
apply to a point (a schedule distance without `interleave`) are reset to their default, so
equivalent points build the same strategy and the sweep runs it once (same hash).
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator

from kernels_mlir.spec import KernelSpec, SpecError
from pipelines.compile import strategy_lanes
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.llvm_options import LLVMOptions
from transforms.steps import (CAfterLoop, HoistAccumulators, Legalize, LowerContraction, LowerTransfers, Pipeline,
                              Prefetch, ScalarLoads, Schedule, Step, TileK, UnrollK, Vectorize)
from transforms.strategy import Strategy

from .timing import TimingPolicy

#: Knob -> default. 0 turns pipelining / prefetching off; unroll 1 leaves the k loop alone.
KNOBS: dict[str, Any] = {
    "mr": 6, "nr": 16, "kc": 256, "dtype": "f32",
    "legalize": False, "lowering": "outerproduct", "scalar_loads": True, "c_after_loop": False,
    "unroll": 4, "pipeline": 0, "pipeline_carry": "iteration",
    "schedule": "as-built", "schedule_distance": 2, "schedule_seed": 0,
    "prefetch": 0, "prefetch_locality": 3,
    "opt": LLVMOptions().opt, "codegen_opt": LLVMOptions().codegen_opt, "machine_scheduler": None,
    "fast_math": LLVMOptions().fast_math,
    "vector_bits": None,
}
#: Type of each knob's choices where the default (None) does not tell it.
KNOB_TYPES: dict[str, type] = {"machine_scheduler": bool, "vector_bits": int}

Point = dict[str, Any]


def _normalized(point: Point) -> Point:
    p = {**KNOBS, **point}
    if p["schedule"] != "interleave":
        p["schedule_distance"] = KNOBS["schedule_distance"]
    if p["schedule"] != "random":
        p["schedule_seed"] = KNOBS["schedule_seed"]
    if p["pipeline"] == 0:
        p["pipeline_carry"] = KNOBS["pipeline_carry"]
    if p["prefetch"] == 0:
        p["prefetch_locality"] = KNOBS["prefetch_locality"]
    return p


def _name(p: Point) -> str:
    parts = [f"{p['mr']}x{p['nr']}x{p['kc']}", p["dtype"]]
    parts += ["legal"] if p["legalize"] else []
    parts += ["sl"] if p["scalar_loads"] else []
    parts += ["cafter"] if p["c_after_loop"] else []
    parts += [f"u{p['unroll']}"] if p["unroll"] != 1 else []
    parts += [f"pipe{p['pipeline']}" + ("f" if p["pipeline_carry"] == "first-step" else "")] if p["pipeline"] else []
    if p["schedule"] != "as-built":
        parts.append({"loads-first": "lf", "interleave": f"il{p['schedule_distance']}",
                      "random": f"rnd{p['schedule_seed']}"}[p["schedule"]])
    parts += [f"pf{p['prefetch']}l{p['prefetch_locality']}"] if p["prefetch"] else []
    parts += [p["lowering"]] if p["lowering"] != KNOBS["lowering"] else []
    parts.append(p["opt"] + ("" if p["codegen_opt"] == 3 else f"cg{p['codegen_opt']}"))
    parts += [f"misched-{'on' if p['machine_scheduler'] else 'off'}"] if p["machine_scheduler"] is not None else []
    parts += [f"fm-{p['fast_math']}"] if p["fast_math"] != "none" else []
    parts += [f"v{p['vector_bits']}"] if p["vector_bits"] is not None else []
    return "-".join(parts)


def strategy_for(point: Point) -> Strategy:
    """The strategy a point stands for (raises StrategyError/SpecError when it is not a valid one)."""
    p = _normalized(point)
    steps: list[Step] = [TileK(1), Vectorize()]
    steps += [Legalize()] if p["legalize"] else []
    steps += [HoistAccumulators(), LowerContraction(p["lowering"]), LowerTransfers()]
    steps += [ScalarLoads()] if p["scalar_loads"] else []
    steps += [CAfterLoop()] if p["c_after_loop"] else []
    steps += [UnrollK(p["unroll"])] if p["unroll"] != 1 else []
    steps += [Pipeline(p["pipeline"], p["pipeline_carry"])] if p["pipeline"] else []
    if p["schedule"] != "as-built":
        steps.append(Schedule(p["schedule"], p["schedule_distance"], p["schedule_seed"]))
    steps += [Prefetch(p["prefetch"], p["prefetch_locality"])] if p["prefetch"] else []
    llvm = LLVMOptions(opt=p["opt"], codegen_opt=p["codegen_opt"], machine_scheduler=p["machine_scheduler"],
                       fast_math=p["fast_math"])
    return Strategy(_name(p), KernelSpec(p["mr"], p["nr"], p["kc"], p["dtype"]), tuple(steps), llvm,
                    p["vector_bits"])


def vector_registers_needed(p: Point, lanes: int) -> int:
    """Accumulators plus one k-step's operands: B vectors and A (one broadcast, or A vectors)."""
    b_vectors = -(-p["nr"] // lanes)
    a_registers = 1 if p["scalar_loads"] else -(-p["mr"] // lanes)
    return p["mr"] * b_vectors + b_vectors + a_registers


@dataclass(frozen=True)
class SearchSpace:
    choices: dict[str, tuple[Any, ...]]
    #: Reject points whose registers_needed exceeds the register file (False: keep them to study spills).
    fit_registers: bool = True

    def __post_init__(self) -> None:
        for knob, values in self.choices.items():
            if knob not in KNOBS:
                raise StrategyError(f"space.{knob}: unknown knob (known: {', '.join(KNOBS)})")
            if not values:
                raise StrategyError(f"space.{knob}: needs at least one choice")

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
            needed = vector_registers_needed(_normalized(point), lanes)
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
        if self.method not in METHODS:
            raise StrategyError(f"sweep.method: must be one of {list(METHODS)}, got {self.method!r}")
        for name in ("budget", "jobs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise StrategyError(f"sweep.{name}: must be >= 1, got {value}")
        if self.time_seconds is not None and self.time_seconds <= 0:
            raise StrategyError(f"sweep.time_seconds: must be > 0, got {self.time_seconds}")
        if self.timeout_seconds <= 0:
            raise StrategyError(f"sweep.timeout_seconds: must be > 0, got {self.timeout_seconds}")
        if self.leaders < 0:
            raise StrategyError(f"sweep.leaders: must be >= 0, got {self.leaders}")


def knobs_of(strategy: dict[str, Any]) -> Point:
    """The knob values a stored strategy (its JSON form) shows, whoever built it: for the report."""
    steps = {s["step"]: s for s in strategy.get("steps", [])}
    llvm = {**LLVMOptions().to_dict(), **strategy.get("llvm", {})}
    schedule = steps.get("schedule", {})
    return {
        **strategy["kernel"],
        "legalize": "legalize" in steps, "scalar_loads": "scalar_loads" in steps,
        "c_after_loop": "c_after_loop" in steps,
        "lowering": steps.get("lower_contraction", {}).get("lowering", KNOBS["lowering"]),
        "unroll": steps.get("unroll_k", {}).get("factor", 1), "pipeline": steps.get("pipeline", {}).get("stages", 0),
        "schedule": schedule.get("policy", "as-built"), "prefetch": steps.get("prefetch", {}).get("distance", 0),
        "opt": llvm["opt"], "codegen_opt": llvm["codegen_opt"],
        "machine_scheduler": llvm.get("machine_scheduler"), "fast_math": llvm.get("fast_math", "none"),
        "vector_bits": strategy.get("vector_bits"),
    }
