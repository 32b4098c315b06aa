"""`ukl sweep`: evaluate many candidates in isolated workers, screening first, then the leaders at full length.

Compilation runs in `jobs` worker processes at once; measurements run one at a time on the machine
(runner.search.machine_lock, held by the parent, so a worker that dies while measuring cannot leave
it taken, and released by the kernel if the parent dies). Each result is committed to the store as
soon as it exists.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import statistics
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Iterator

from tqdm import tqdm

from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.strategy import Strategy

from runner.config.fields import fits_in_memory
from runner.kinds import kind_named
from runner.measure import reproducer, trust
from runner.measure.environment import host_cpu_model
from runner.measure.lifecycle import Candidate
from runner.measure.record import Record, rank
from runner.measure.timing import TimingPolicy, measurement_cpu
from runner.search.candidates import CandidateSource, ListSource, TunerSource
from runner.search.machine_lock import CompileGate, MachineLock
from runner.search.space import SweepSettings
from runner.search.worker import Worker, WorkerDied
from runner.store.results import FINAL, FULL, RESCREEN, SCREEN, SCREENING, Store

if TYPE_CHECKING:  # the sweep reads an Experiment; config parses it (config -> search, not back)
    from runner.config.experiment import Experiment


def compile_cpus(jobs: int) -> set[int] | None:
    """CPUs for compilation: all but the measuring one (when there is more than one)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    rest = allowed - {measurement_cpu()}
    return rest or allowed


def allowed_cpus() -> set[int] | None:
    """Every CPU this process may use (before any pinning): where a multi-threaded GEMM is measured."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def evaluate_in(worker: Worker, candidate: Candidate, policy: TimingPolicy, lock: MachineLock, gate: CompileGate,
                timeout: float, phase: str) -> tuple[Candidate, Record]:
    """Compile in the worker (in parallel with others), then verify and measure under `lock`; a
    multi-threaded GEMM is measured with no compile running beside it (`gate`): it uses every CPU."""
    seconds = None
    try:
        with gate.compiling():
            compiled = worker.call("compile", candidate.to_dict(), timeout)
        if isinstance(compiled, Record):
            record = compiled
        else:
            seconds = compiled
            alone = candidate.kind.threads(candidate.problem) > 1
            with lock, gate.alone() if alone else contextlib.nullcontext():
                record = worker.call("measure", policy, timeout)
    except WorkerDied as exc:
        record = candidate.record(exc.status, compile_seconds=seconds, error=str(exc))
    record.extra["phase"] = phase
    return candidate, record


class Sweep:
    #: The shared sweep this one works for (None: a sweep of its own; see runner.search.shared).
    study_name: str | None = None

    def __init__(self, experiment: Experiment, target: Target, store: Store, settings: SweepSettings, resume: bool):
        self.experiment = experiment
        self.store = store
        self.settings = settings
        self.resume = resume
        self.target = target
        self.jobs = settings.jobs or default_jobs()
        self.source = self._source()

    def _source(self) -> CandidateSource:
        """Candidates of the screening phase: the listed strategies, then the space by `method`."""
        done = self.store.measured(self.target, (SCREEN, FULL)) if self.resume else {}
        s, space, listed = self.settings, self.experiment.space, list(self.experiment.strategies)
        if s.method == "tuner":
            if space is None or s.budget is None:
                raise StrategyError("sweep.method: the tuner needs a [space] and a budget")
            kind = self.experiment.problem_kind
            if kind.problems_per_strategy(self.experiment.settings) != 1:
                raise StrategyError(f"sweep.method: the tuner tunes one problem: list one [{kind.section}] problem "
                                    "(or sweep them with grid or random)")
            return TunerSource(space, self.target, s.seed, s.budget, listed, done, self._expand)
        points = [] if space is None else (space.grid() if s.method == "grid" else space.shuffled(s.seed))
        return ListSource(listed, points, space, self.target, s.budget, done, self._expand,
                          give_up_after=GIVE_UP_AFTER if s.method == "random" else None)

    def _expand(self, strategy: Strategy, point: dict | None) -> list[Candidate]:
        """A strategy's candidates: one per problem its kind makes of it (a GEMM: one per shape, blocked
        as the point says; knobs the point does not set come from the kind's config section)."""
        kind = self.experiment.problem_kind
        problems = kind.problems(self.experiment.settings, strategy, point)
        for problem in problems:  # a point's blocking may take more than its shape's check counted
            fits_in_memory(kind.bytes_needed(problem), "the point's problem")
        return [Candidate(strategy, problem, self.target) for problem in problems]

    def run(self) -> Iterator[Record]:
        """Screen every candidate, then re-measure the leaders at full length; yields every record."""
        source = self.source
        run_id = self.store.start_run("sweep", self.target, str(self.experiment.path), self.experiment.name)
        deadline = None if self.settings.time_seconds is None else time.monotonic() + self.settings.time_seconds
        source.deadline = deadline
        screened: list[tuple[Candidate, Record]] = []
        bar = tqdm(total=source.total, desc=f"{self.experiment.name} screen", unit="cand", disable=None,
                   leave=False)
        for candidate, record in self._evaluate(source.next, self.settings.screen, SCREEN, deadline, source.tell):
            self._keep(run_id, candidate, record, SCREEN)
            screened.append((candidate, record))
            bar.update(1)
            best = max((r for _, r in screened if r.status == "ok"), key=lambda r: r.measurement.median, default=None)
            if best is not None:
                bar.set_postfix_str(f"best {best.measurement.median:.1f} GFLOP/s {best.strategy.name}")
            yield record
        bar.close()
        self.store.add_rejections(run_id, source.rejected)  # the report explains them too
        noisy = [c for c, r in screened if r.status == "ok" and r.noisy]
        if noisy:  # a noisy screen is measured again before it can lead or be passed over
            for candidate, record in self._evaluate(_feeder(noisy), self.settings.screen, RESCREEN, None, None):
                self._keep(run_id, candidate, record, RESCREEN)
                screened.append((candidate, record))
                yield record
        leaders = self._leaders(screened, source.resumed)
        bar = tqdm(total=len(leaders), desc=f"{self.experiment.name} leaders", unit="cand", disable=None, leave=False)
        for candidate, record in self._evaluate(_feeder(leaders), self.experiment.timing, FINAL, None, None):
            self._keep(run_id, candidate, record, FINAL)
            bar.update(1)
            yield record
        bar.close()

    def _keep(self, run_id: int, candidate: Candidate, record: Record, phase: str) -> None:
        """A failure's reproducer, then the record into the store."""
        reproducer.attach(self.store.repro_root, candidate, record)
        self.store.add(run_id, record, self.target, self.experiment.name, phase, study=self.study_name)

    def _leaders(self, screened: list[tuple[Candidate, Record]], resumed: set[str]) -> list[Candidate]:
        """The best screened candidates of each problem (this run's and, with --resume, earlier runs')
        without a final result, in the order every listing uses (record.rank): `leaders` per GEMM shape."""
        latest = {c.key: (c, r) for c, r in screened}  # a re-screen replaces the first screen
        ranked = {key: (rank(r.to_json()), c) for key, (c, r) in latest.items() if r.status == "ok"}
        if resumed:
            for row in self.store.rows(target=self.target.name, host_cpu=host_cpu_model(), phases=SCREENING,
                                       status="ok"):
                key = row["candidate_key"]
                if key in resumed and key not in ranked:
                    ranked[key] = (rank(row), self._stored_candidate(row))
        finals = self.store.measured(self.target, (FINAL,)) if self.resume else set()
        return best_per_problem(ranked, finals, self.settings.leaders)

    def _stored_candidate(self, row: dict) -> Candidate:
        """The candidate a stored screening row measured (its kind reads the problem from its record)."""
        kind = kind_named(row["kind"])
        strategy = Strategy.from_dict(json.loads(row["strategy_json"]))
        strategy = dataclasses.replace(strategy, name=kind.strategy_name(strategy.name))  # Candidate.named labels it
        return Candidate(strategy, kind.from_record(json.loads(row["record_json"])), self.target)

    def _settle(self, candidate: Candidate, record: Record, phase: str) -> None:
        """What the worker thread does with a result before handing it on: nothing here (the consumer
        stores it); a shared sweep stores it and releases its claim at once."""

    def _evaluate(self, next_candidate, policy: TimingPolicy, phase: str, deadline: float | None,
                  tell) -> Iterator[Record]:
        """Run candidates from `next_candidate()` on `jobs` workers until it returns None or time is up."""
        results: queue.Queue = queue.Queue()
        lock = MachineLock()  # measurements one at a time, in this sweep and any other on the machine
        gate = CompileGate()
        stop = threading.Event()
        cpus = compile_cpus(self.jobs)
        measure_cpu, measure_cpus = measurement_cpu(), allowed_cpus()
        workers: list[Worker] = []

        def work() -> None:
            worker = Worker(self.target.name, cpus, measure_cpu, measure_cpus)
            workers.append(worker)
            try:
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    candidate = next_candidate()
                    if candidate is None:
                        break
                    item = evaluate_in(worker, candidate, policy, lock, gate, self.settings.timeout_seconds, phase)
                    self._settle(*item, phase)
                    results.put(item)
            except BaseException as exc:  # surfaced by the consumer below
                results.put(exc)
            finally:
                worker.close()
                results.put(None)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(self.jobs)]
        for thread in threads:
            thread.start()
        finished = 0
        try:
            while finished < len(threads):
                item = results.get()
                if item is None:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    if tell is not None:
                        tell(item[1])
                    yield item
        finally:  # done, or interrupted (^C, SIGTERM): kill the workers, so no thread waits on one
            stop.set()
            for worker in workers:
                worker.kill()
            for thread in threads:
                thread.join()


def best_per_problem(ranked: dict[str, tuple[tuple, Candidate]], skip, count: int) -> list[Candidate]:
    """The `count` best candidates (by their rank) of each problem, leaving out keys in `skip`:
    candidates compete within their kind's leader group (micro-kernels all together, GEMMs per shape)."""
    by_problem: dict[tuple[str, str], list[tuple[tuple, Candidate]]] = {}
    for key, (order, candidate) in ranked.items():
        if key not in skip:
            group = (candidate.problem.kind, candidate.kind.leader_group(candidate.problem))
            by_problem.setdefault(group, []).append((order, candidate))
    return [c for group in by_problem.values() for _, c in sorted(group, key=lambda item: item[0])[:count]]


def _feeder(items: list[Candidate]):
    """A thread-safe next() over `items` for the worker threads (None when exhausted)."""
    pending = iter(items)
    lock = threading.Lock()

    def next_item() -> Candidate | None:
        with lock:
            return next(pending, None)
    return next_item


#: A random search that draws this many invalid or already-measured points in a row stops.
GIVE_UP_AFTER = 10_000


def rejection_reasons(rejected: Counter, shown: int = 3) -> str:
    """`N points rejected before compiling (n1: reason, n2: reason, ...)`, reasons that differ only in
    their numbers counted together."""
    grouped: Counter = Counter()
    for reason, count in rejected.items():
        grouped[re.sub(r"\d+", "N", reason)] += count
    top = [f"{n}: {reason}" for reason, n in grouped.most_common(shown)]
    more = len(grouped) - shown
    return (f"{sum(rejected.values())} points rejected before compiling (" + "; ".join(top)
            + (f"; {more} other reasons" if more > 0 else "") + ")")


def summary_line(records: list[Record], rejected: Counter, resumed: int) -> str:
    parts = []
    for phase, label in ((SCREEN, "screened"), (FINAL, "leaders re-measured")):
        mine = [r for r in records if r.extra.get("phase") == phase]
        counts = Counter(r.status for r in mine)
        if mine:
            parts.append(f"{len(mine)} {label} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
        again = [r for r in records if r.extra.get("phase") == RESCREEN]
        if phase == SCREEN and again:
            parts.append(f"{len(again)} noisy screens (cv > {100 * trust.NOISY_CV:.0f}%) re-screened, "
                         f"{sum(r.noisy for r in again)} still noisy")
    if rejected:
        parts.append(rejection_reasons(rejected))
    if resumed:
        parts.append(f"{resumed} already measured (--resume)")
    finals = [r for r in records if r.extra.get("phase") == FINAL and r.status == "ok"]
    best = max(finals, key=lambda r: r.measurement.median, default=None)
    if best is not None:
        parts.append(f"best {best.strategy.name} {best.measurement.median:.2f} GFLOP/s"
                     + ("" if best.fraction_of_peak is None else f" ({100 * best.fraction_of_peak:.1f}% of peak)")
                     + f"; median final cv {100 * statistics.median(r.measurement.cv for r in finals):.1f}%")
    return "; ".join(parts) or "nothing evaluated"
