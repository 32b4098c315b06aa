"""Where a sweep's candidates come from: a list (grid or shuffled space) or a tuner (Optuna TPE).

Both are thread-safe: worker threads call next() and the consumer calls tell() with results.
A point becomes a strategy, and the strategy one candidate per problem (`expand`: the kernel
itself, or a GEMM around it at each of the config's shapes). Points that are invalid for the
target, or break the register constraint, are never compiled; a candidate already measured here
(same key, target and host) is skipped under --resume.
"""
from __future__ import annotations

import threading
from collections import Counter
import time
from typing import Any, Callable, Iterable

from kernels_mlir.spec import SpecError
from pipelines.model import NoModel, blocking, register_tile
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.strategy import Strategy

from runner.measure.characterize import with_measured_datapath
from runner.measure.lifecycle import Candidate, record_key
from runner.measure.record import Record
from runner.search.space import Point, SearchSpace

#: A strategy (and the point it came from, None for a listed one) -> its candidates.
Expand = Callable[[Strategy, Point | None], list[Candidate]]

#: Tuner proposals per candidate before concluding the space holds nothing new.
MAX_PROPOSALS = 200


def score(record: Record) -> float:
    """What the tuner maximises: fraction of the measured peak (0 for anything not verified)."""
    return record.fraction_of_peak or 0.0


def microkernel_only(target: Target) -> Expand:
    """The expansion of a micro-kernel sweep: each strategy is its own kernel's candidate."""
    return lambda strategy, point: [Candidate.microkernel(strategy, target)]


class CandidateSource:
    def __init__(self, target: Target, budget: int | None, done: dict[str, float], expand: Expand | None):
        self.target = target
        self.budget = budget
        self.done = done  # candidate key -> score, for --resume
        self.expand = expand or microkernel_only(target)
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

    def _fresh(self, candidate: Candidate) -> bool:
        """False for a repeat in this sweep, or (counted as resumed) one measured before."""
        if candidate.key in self.seen:
            return False
        self.seen.add(candidate.key)
        if candidate.key in self.done:
            self.resumed.add(candidate.key)
            return False
        return True

    def _admit(self, space: SearchSpace, point: Point) -> list[Candidate]:
        """The point's candidates, or none (its rejection counted with the reason)."""
        try:
            return self.expand(space.admit(point, self.target), point)
        except (StrategyError, SpecError) as exc:
            self.rejected[str(exc)] += 1
            return []

    def _ask(self, study, space: SearchSpace):
        """(trial, candidate): the sampler's next point; an invalid one is told 0, so TPE learns to
        avoid it, and comes back as (trial, None)."""
        trial = study.ask()
        point = {knob: trial.suggest_categorical(knob, list(values)) for knob, values in space.choices.items()}
        candidates = self._admit(space, point)
        if not candidates:
            study.tell(trial, 0.0)
            return trial, None
        (candidate,) = candidates  # the tuner tunes one problem (the config checks it)
        return trial, candidate

    def next(self) -> Candidate | None:
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
                 target: Target, budget: int | None, done: dict[str, float], expand: Expand | None = None,
                 give_up_after: int | None = None):
        super().__init__(target, budget, done, expand)
        self._listed = (c for s in strategies for c in self.expand(s, None))
        self._queued: list[Candidate] = []
        self._points = iter(points)
        self._space = space
        self._given = 0
        self.give_up_after = give_up_after
        self._total = None if budget is None and space is not None else \
            budget if space is None or budget is not None and budget <= space.size else None

    @property
    def total(self) -> int | None:
        return self._total

    def next(self) -> Candidate | None:
        with self.lock:
            if self.budget is not None and self._given >= self.budget:
                return None
            candidate = next((c for c in self._listed if self._fresh(c)), None) or self._next_point()
            self._given += candidate is not None
            return candidate

    def _next_point(self) -> Candidate | None:
        misses = 0
        while True:
            while self._queued:  # the rest of the last point's candidates (a GEMM's other shapes)
                candidate = self._queued.pop(0)
                if self._fresh(candidate):
                    return candidate
            point = next(self._points, None)
            if point is None:
                return None
            self._queued = self._admit(self._space, point)
            if any(c.key not in self.seen and c.key not in self.done for c in self._queued):
                continue
            misses += 1
            if self.give_up_after is not None and misses >= self.give_up_after:
                self.gave_up = True
                return None
            if self.deadline is not None and misses % 256 == 0 and time.monotonic() > self.deadline:
                return None


def model_point(space: SearchSpace, target: Target) -> dict[str, Any]:
    """The model's register tile and kc (pipelines.model) as values of the space's mr, nr and kc knobs,
    each where the space offers it (a space without them, or a target the model cannot choose for: none)."""
    dtypes = space.choices.get("dtype", ("f32",))
    dtype = dtypes[0] if dtypes[0] in ("f32", "f64") else "f32"
    target = with_measured_datapath(target)
    try:
        tile = register_tile(target, dtype)
        chosen = {"mr": tile.mr, "nr": tile.nr, "kc": blocking(target, dtype, tile.mr, tile.nr).kc}
    except (NoModel, StrategyError):
        return {}
    return {knob: value for knob, value in chosen.items() if value in space.choices.get(knob, ())}


class TunerSource(CandidateSource):
    """Optuna's TPE sampler over the space's knobs; each trial's value is the screening fraction of peak.

    Invalid points and failed kernels score 0, so the sampler learns to avoid them; a point
    that maps to a strategy already measured gets that strategy's score without a new run.
    """

    def __init__(self, space: SearchSpace, target: Target, seed: int, budget: int, strategies: list[Strategy],
                 done: dict[str, float], expand: Expand | None = None):
        import optuna
        super().__init__(target, budget, done, expand)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._space = space
        #: The analytical model's point goes first: the tuner starts from it, and learns from there.
        self.model_point = model_point(space, target)
        if self.model_point:
            self._study.enqueue_trial(self.model_point)
        self._listed = [c for s in strategies for c in self.expand(s, None) if self._fresh(c)]
        self._pending: dict[str, list] = {}
        self._scores: dict[str, float] = {}  # this sweep's results
        self._issued = 0

    def next(self) -> Candidate | None:
        with self.lock:
            if self._issued >= self.budget:
                return None
            if self._listed:
                self._issued += 1
                return self._listed.pop(0)
            for _ in range(MAX_PROPOSALS):
                trial, candidate = self._ask(self._study, self._space)
                if candidate is None:
                    continue
                key = candidate.key
                if key in self._pending:
                    self._pending[key].append(trial)
                elif key in self._scores:
                    self._study.tell(trial, self._scores[key])
                elif key in self.done:
                    self.resumed.add(key)
                    self._study.tell(trial, self.done[key])
                else:
                    self.seen.add(key)
                    self._pending[key] = [trial]
                    self._issued += 1
                    return candidate
            return None

    def tell(self, record: Record) -> None:
        with self.lock:
            value = score(record)
            key = record_key(record)
            self._scores[key] = value
            for trial in self._pending.pop(key, []):
                self._study.tell(trial, value)
