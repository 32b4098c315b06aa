"""Where a sweep's candidates come from: a list (grid or shuffled space) or a tuner (Optuna TPE).

Both are thread-safe: worker threads call next() and the consumer calls tell() with results.
Points that are invalid for the target, or break the register constraint, are never compiled;
a strategy already measured here (same hash, target and host) is skipped under --resume.
"""
from __future__ import annotations

import threading
from collections import Counter
import time
from typing import Iterable

from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.strategy import Strategy

from runner.measure.record import Record
from runner.search.space import Point, SearchSpace

#: Tuner proposals per candidate before concluding the space holds nothing new.
MAX_PROPOSALS = 200


def score(record: Record) -> float:
    """What the tuner maximises: fraction of the measured peak (0 for anything not verified)."""
    return record.fraction_of_peak or 0.0


class CandidateSource:
    def __init__(self, target: Target, budget: int | None, done: dict[str, float]):
        self.target = target
        self.budget = budget
        self.done = done  # hash -> score, for --resume
        self.seen: set[str] = set()
        #: Why points were rejected before compiling, with how many each time.
        self.rejected: Counter[str] = Counter()
        #: time.monotonic() past which a scan through rejected points stops (set by the sweep).
        self.deadline: float | None = None
        #: True when a search stopped because it met only invalid or measured points for a long while.
        self.gave_up = False
        self.resumed: set[str] = set()
        self.lock = threading.Lock()

    @property
    def total(self) -> int | None:
        return self.budget

    def _fresh(self, strategy: Strategy) -> bool:
        """False for a repeat in this sweep, or (counted as resumed) one measured before."""
        if strategy.hash in self.seen:
            return False
        self.seen.add(strategy.hash)
        if strategy.hash in self.done:
            self.resumed.add(strategy.hash)
            return False
        return True

    def _admit(self, space: SearchSpace, point: Point) -> Strategy | None:
        try:
            return space.admit(point, self.target)
        except StrategyError as exc:
            self.rejected[str(exc)] += 1
            return None

    def next(self) -> Strategy | None:
        raise NotImplementedError

    def tell(self, record: Record) -> None:
        """Results arrive here (the list source has nothing to learn)."""


class ListSource(CandidateSource):
    """Listed strategies first, then points in the given order, cut at the budget.

    Points are read lazily, as workers ask: a grid of millions of points starts at once, and a scan
    through invalid points stops at the sweep's deadline. With `give_up_after`, a search that meets
    that many invalid or already-measured points in a row concludes the space holds nothing new.
    """

    def __init__(self, strategies: list[Strategy], points: Iterable[Point], space: SearchSpace | None,
                 target: Target, budget: int | None, done: dict[str, float], give_up_after: int | None = None):
        super().__init__(target, budget, done)
        self._listed = iter(strategies)
        self._points = iter(points)
        self._space = space
        self._given = 0
        self.give_up_after = give_up_after
        self._total = None if budget is None and space is not None else \
            budget if space is None or budget is not None and budget <= space.size else None

    @property
    def total(self) -> int | None:
        return self._total

    def next(self) -> Strategy | None:
        with self.lock:
            if self.budget is not None and self._given >= self.budget:
                return None
            strategy = next((s for s in self._listed if self._fresh(s)), None) or self._next_point()
            self._given += strategy is not None
            return strategy

    def _next_point(self) -> Strategy | None:
        misses = 0
        for point in self._points:
            strategy = self._admit(self._space, point)
            if strategy is not None and self._fresh(strategy):
                return strategy
            misses += 1
            if self.give_up_after is not None and misses >= self.give_up_after:
                self.gave_up = True
                return None
            if self.deadline is not None and misses % 256 == 0 and time.monotonic() > self.deadline:
                return None
        return None


class TunerSource(CandidateSource):
    """Optuna's TPE sampler over the space's knobs; each trial's value is the screening fraction of peak.

    Invalid points and failed kernels score 0, so the sampler learns to avoid them; a point
    that maps to a strategy already measured gets that strategy's score without a new run.
    """

    def __init__(self, space: SearchSpace, target: Target, seed: int, budget: int, strategies: list[Strategy],
                 done: dict[str, float]):
        import optuna
        super().__init__(target, budget, done)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._space = space
        self._listed = [s for s in strategies if self._fresh(s)]
        self._pending: dict[str, list] = {}
        self._scores: dict[str, float] = {}  # this sweep's results
        self._issued = 0

    def next(self) -> Strategy | None:
        with self.lock:
            if self._issued >= self.budget:
                return None
            if self._listed:
                self._issued += 1
                return self._listed.pop(0)
            for _ in range(MAX_PROPOSALS):
                trial = self._study.ask()
                point = {knob: trial.suggest_categorical(knob, list(values))
                         for knob, values in self._space.choices.items()}
                strategy = self._admit(self._space, point)
                if strategy is None:
                    self._study.tell(trial, 0.0)
                elif strategy.hash in self._pending:
                    self._pending[strategy.hash].append(trial)
                elif strategy.hash in self._scores:
                    self._study.tell(trial, self._scores[strategy.hash])
                elif strategy.hash in self.done:
                    self.resumed.add(strategy.hash)
                    self._study.tell(trial, self.done[strategy.hash])
                else:
                    self.seen.add(strategy.hash)
                    self._pending[strategy.hash] = [trial]
                    self._issued += 1
                    return strategy
            return None

    def tell(self, record: Record) -> None:
        with self.lock:
            value = score(record)
            self._scores[record.strategy.hash] = value
            for trial in self._pending.pop(record.strategy.hash, []):
                self._study.tell(trial, value)
