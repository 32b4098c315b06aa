"""`ukl sweep --study NAME --db postgresql://…`: one of any number of workers of one sweep, on any
number of machines, coordinated by Optuna's relational storage (nothing home-made in between).

Each phase of the sweep (screen, rescreen, final) is an Optuna study per kind of host, named
`NAME|phase|host kind`; its trials are candidates. The first worker to create a phase's study fills
it (grid and random candidates, listed strategies, noisy screens or leaders) and marks it ready;
every worker then claims one WAITING trial at a time, compiles and measures it on its own machine,
writes the record to the shared store and tells the trial its score. With the `tuner` method the
screening study is also Optuna's TPE study: a worker with nothing queued asks the sampler.

A claimed trial sends Optuna heartbeats while it is evaluated. A worker killed mid-candidate stops
beating; the next worker to look fails its trial as stale, and Optuna's RetryFailedTrialCallback
queues a copy, which another worker claims. The store writes a result at most once per study,
candidate, kind of host and phase, so a worker killed after writing but before telling does no harm.
Machines of different kinds never share a phase study, so they never measure for each other.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING, Callable, Iterator

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from pipelines.targets import Target

from runner.measure.environment import host_kind
from runner.measure.lifecycle import Candidate
from runner.measure.record import Record, rank
from runner.measure.trust import is_noisy
from runner.search.candidates import MAX_PROPOSALS, CandidateSource, score
from runner.search.space import SweepSettings
from runner.search.sweep import Sweep, best_per_problem
from runner.store.results import FINAL, RESCREEN, SCREEN, SCREENING, Store, StoreError

if TYPE_CHECKING:
    from runner.config.experiment import Experiment

#: User attributes the workers keep on Optuna's studies and trials.
READY, CONFIG, CANDIDATE, WORKER = "ukl:ready", "ukl:config", "ukl:candidate", "ukl:worker"
#: Seconds between a claimed trial's heartbeats (a dead worker's trial is retried after 3 of them).
DEFAULT_HEARTBEAT = 10
#: How often a worker with nothing to claim looks again while other workers' trials run (seconds).
POLL_SECONDS = 0.5
#: How long a worker waits for a study's creator to finish filling it before saying so (seconds).
READY_WAIT_SECONDS = 120.0
#: The most candidates a grid or random sweep queues (each is a row on the server).
MAX_QUEUED = 10_000
#: A candidate whose worker died this many times is not tried again (Optuna's retry limit).
MAX_RETRIES = 3


class StudyError(StoreError):
    """The study exists with another config, or was left half filled; str() is the one line."""


def config_fingerprint(experiment: "Experiment", settings: SweepSettings) -> str:
    """What must be equal for two workers to be in one sweep: the config file's bytes and the sweep
    settings that choose candidates and leaders (not jobs or time, which are each worker's own)."""
    chosen = {"method": settings.method, "budget": settings.budget, "seed": settings.seed,
              "leaders": settings.leaders, "screen": [settings.screen.min_sample_seconds, settings.screen.samples]}
    digest = hashlib.sha256(experiment.path.read_bytes() + json.dumps(chosen, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def optuna_storage(url: str, heartbeat: int) -> RDBStorage:
    """Optuna's storage on the same server. Its tables are created under an advisory lock, so many
    workers starting at once on a new database do not race to create them."""
    import sqlalchemy
    engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as db:
            db.execute(sqlalchemy.text("SELECT pg_advisory_lock(7262)"))
            try:
                with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat,
                                      grace_period=3 * heartbeat,
                                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                          max_retry=MAX_RETRIES))
            finally:
                db.execute(sqlalchemy.text("SELECT pg_advisory_unlock(7262)"))
                db.commit()
    finally:
        engine.dispose()


class _Heartbeat:
    """Beats for one claimed trial until stopped (a thread; Optuna's own runs only inside optimize())."""

    def __init__(self, storage: RDBStorage, trial_id: int, interval: int):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)
        self._thread.start()

    def _beat(self, storage: RDBStorage, trial_id: int, interval: int) -> None:
        while not self._stop.is_set():
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # the server is away: the main thread's next call says so
                pass
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class StudyQueue(CandidateSource):
    """Candidates claimed one at a time from a phase's Optuna study (thread-safe, like every source)."""

    def __init__(self, study: optuna.Study, storage: RDBStorage, target: Target, expand, heartbeat: int,
                 measured: Callable[[str], dict[str, float]], reconnect: Callable, space=None,
                 budget: int | None = None):
        super().__init__(target, budget, {}, expand)
        self.study = study
        self.storage = storage
        self.heartbeat = heartbeat
        self._measured = measured
        self._reconnect = reconnect
        self._space = space  # set for the tuner: with nothing queued, the sampler proposes
        self._claimed: dict[str, tuple[int, _Heartbeat]] = {}  # key -> (trial number, heartbeat)

    @property
    def total(self) -> int | None:
        return None

    def next(self) -> Candidate | None:
        while True:
            with self.lock:  # not held while waiting: this worker's own results must be told meanwhile
                found = self._reconnect(self._claim)
                if found is not None:
                    return found
                if not self._reconnect(self._busy):  # nothing queued, nothing running anywhere: done
                    return None
            time.sleep(POLL_SECONDS)

    def _busy(self) -> bool:
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))

    def _claim(self) -> Candidate | None:
        """A queued candidate, or one the tuner proposes; trials of dead workers are failed first (and
        queued again by Optuna's retry callback)."""
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9, and what its own optimize() calls
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(self.study)
        storage = self.storage  # trials are claimed by id (FrozenTrial._trial_id), as Optuna's own ask() does
        for waiting in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                if not storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
                    continue  # another worker claimed it first
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            storage.record_heartbeat(waiting._trial_id)  # at once: a trial with no beat is never found stale
            data = waiting.user_attrs.get(CANDIDATE)
            if data is None:  # a tuner trial retried before it was given a candidate
                self.study.tell(waiting.number, state=TrialState.FAIL)
                continue
            candidate = Candidate.from_dict(json.loads(data), self.target)
            if self._settled(waiting.number, candidate):
                continue
            return self._start(waiting._trial_id, waiting.number, candidate)
        return None if self._space is None else self._propose()

    def _propose(self) -> Candidate | None:
        """The sampler's next candidate (TPE over the space's knobs), within the budget."""
        for _ in range(MAX_PROPOSALS):
            started = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,
                                                                                TrialState.COMPLETE))
                       if CANDIDATE in t.user_attrs]
            if self.budget is not None and len(started) >= self.budget:
                return None
            trial, candidate = self._ask(self.study, self._space)
            if candidate is None:
                continue
            self.storage.record_heartbeat(trial._trial_id)
            if candidate.key in {json.loads(t.user_attrs[CANDIDATE])["key"] for t in started
                                 if t.state == TrialState.RUNNING}:
                self.study.tell(trial, state=TrialState.PRUNED)  # being measured by another worker now
                continue
            if self._settled(trial.number, candidate):
                continue
            return self._start(trial._trial_id, trial.number, candidate)
        return None

    def _settled(self, number: int, candidate: Candidate) -> bool:
        """True (and the trial told its stored score) when this study already has the candidate's
        result here: its worker died after writing it, or the tuner proposed it again."""
        done = self._measured(candidate.key)
        if candidate.key not in done:
            return False
        self.resumed.add(candidate.key)
        self.study.tell(number, done[candidate.key])
        return True

    def _start(self, trial_id: int, number: int, candidate: Candidate) -> Candidate:
        storage = self.storage
        storage.set_trial_user_attr(trial_id, CANDIDATE, json.dumps({**candidate.to_dict(), "key": candidate.key}))
        storage.set_trial_user_attr(trial_id, WORKER, f"{socket.gethostname()}:{os.getpid()}")
        self._claimed[candidate.key] = (number, _Heartbeat(storage, trial_id, self.heartbeat))
        return candidate

    def finish(self, candidate: Candidate, record: Record) -> None:
        """The candidate's record is stored: its trial is told the score and stops beating."""
        with self.lock:
            number, beat = self._claimed.pop(candidate.key)
        beat.stop()
        self._reconnect(lambda: self.study.tell(number, score(record)))

    def release(self) -> None:
        """Stop beating for trials still claimed (the sweep is stopping): they become stale, and
        another worker takes them over."""
        for _, beat in self._claimed.values():
            beat.stop()
        self._claimed.clear()


class SharedSweep(Sweep):
    """A worker of a sweep shared through a server: same candidates, isolation, statuses and phases
    as a sweep on one machine, its work taken from (and its results given to) the study."""

    def __init__(self, experiment: "Experiment", target: Target, store: Store, settings: SweepSettings,
                 resume: bool, study: str, heartbeat: int = DEFAULT_HEARTBEAT):
        """`store`: the server's, whose retry policy (Store's patience and on_wait) Optuna's calls share."""
        assert store.is_server, "the CLI lets only a server's store take a study"
        self.study_name = study
        self.heartbeat = heartbeat
        self.host_kind = host_kind(target)
        self.storage = store.retrying(lambda: optuna_storage(store.url_text, heartbeat))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        super().__init__(experiment, target, store, settings, resume)
        self._check_config(config_fingerprint(experiment, settings))

    def _reconnect(self, action):
        return self.store.retrying(action)

    def _source(self) -> CandidateSource:
        return CandidateSource(self.target, None, {}, self._expand)  # replaced by each phase's queue

    def _check_config(self, fingerprint: str) -> None:
        """The first worker names the study's config; a worker with another config is refused."""
        try:
            anchor = self._reconnect(lambda: optuna.create_study(study_name=self.study_name, storage=self.storage))
            self._reconnect(lambda: anchor.set_user_attr(CONFIG, fingerprint))
            return
        except optuna.exceptions.DuplicatedStudyError:
            anchor = optuna.load_study(study_name=self.study_name, storage=self.storage)
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while CONFIG not in anchor.user_attrs and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        theirs = anchor.user_attrs.get(CONFIG)
        if theirs != fingerprint:
            raise StudyError(f"--study {self.study_name}: was started with another config or [sweep] settings "
                                f"(fingerprint {theirs}, this worker's {fingerprint}): use the same "
                                f"{self.experiment.path.name} and options, or another study name")

    def _sampler(self) -> optuna.samplers.TPESampler:
        """Each worker its own seed (from the config's and the process): workers with one seed would
        propose the same points at once."""
        seed = int(hashlib.sha256(f"{self.settings.seed}|{socket.gethostname()}|{os.getpid()}".encode())
                   .hexdigest()[:8], 16)
        return optuna.samplers.TPESampler(seed=seed)

    def _phase_study(self, phase: str, fill: Callable[[optuna.Study], int]) -> optuna.Study:
        """The phase's study for this kind of host: created and filled by whichever worker comes
        first (then marked ready); the others wait for the mark. With --resume, a study its creator
        left half filled is filled by this worker."""
        name = f"{self.study_name}|{phase}|{self.host_kind}"
        try:
            study = self._reconnect(lambda: optuna.create_study(study_name=name, storage=self.storage,
                                                                direction="maximize", sampler=self._sampler()))
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=self.storage, sampler=self._sampler())
            deadline = time.monotonic() + READY_WAIT_SECONDS
            while READY not in self._reconnect(lambda: study.user_attrs):
                if self.resume:
                    break
                if time.monotonic() > deadline:
                    raise StudyError(f"--study {self.study_name}: the {phase} queue was never finished by the "
                                        f"worker that created it (killed?): start one worker with --resume")
                time.sleep(POLL_SECONDS)
            else:
                return study
        count = self._reconnect(lambda: fill(study))
        self._reconnect(lambda: study.set_user_attr(READY, count))
        return study

    def _enqueue(self, study: optuna.Study, candidates: list[Candidate]) -> int:
        """Queue candidates as WAITING trials, leaving out those the study holds already."""
        held = {json.loads(t.user_attrs[CANDIDATE])["key"] for t in study.get_trials(deepcopy=False)
                if CANDIDATE in t.user_attrs}
        fresh = [c for c in candidates if c.key not in held]
        for c in fresh:
            study.enqueue_trial({}, user_attrs={CANDIDATE: json.dumps({**c.to_dict(), "key": c.key})})
        return len(held) + len(fresh)

    def _done(self, phases: tuple[str, ...], key: str | None = None) -> dict[str, float]:
        return self.store.measured(self.target, phases, self.study_name, key)

    def _fill_screen(self, study: optuna.Study) -> int:
        """Grid and random: every candidate (budget and --resume applied as on one machine). Tuner:
        the listed strategies; the sampler proposes the rest as workers ask."""
        source = super()._source() if self.settings.method != "tuner" else None
        if source is None:
            listed = [c for s in self.experiment.strategies for c in self._expand(s, None)]
            return self._enqueue(study, listed)
        source.done = self._done((SCREEN,))
        candidates = []
        for candidate in iter(source.next, None):
            candidates.append(candidate)
            if len(candidates) > MAX_QUEUED:
                raise StudyError(f"--study {self.study_name}: more than {MAX_QUEUED} candidates to queue: set "
                                    "[sweep] budget, or use method = \"tuner\"")
        if source.rejected:
            self.store.add_rejections(self.run_id, source.rejected)
        self.rejected = source.rejected
        return self._enqueue(study, candidates)

    def _stored(self, phases: tuple[str, ...]) -> dict[str, tuple[dict, Candidate]]:
        """This study's verified results of `phases` on this kind of host: key -> (latest row, candidate)."""
        latest = {}
        for row in self.store.rows(study=self.study_name, host_kind=self.host_kind, phases=phases, status="ok"):
            latest[row["candidate_key"]] = row  # in order written: a re-screen wins
        return {key: (row, self._stored_candidate(row)) for key, row in latest.items()}

    def _fill_rescreen(self, study: optuna.Study) -> int:
        noisy = [c for row, c in self._stored((SCREEN,)).values() if is_noisy(row["cv"])]
        return self._enqueue(study, noisy)

    def _fill_final(self, study: optuna.Study) -> int:
        ranked = {key: (rank(row), c) for key, (row, c) in self._stored(SCREENING).items()}
        return self._enqueue(study, best_per_problem(ranked, self._done((FINAL,)), self.settings.leaders))

    def run(self) -> Iterator[Record]:
        """Work on each phase in turn until the study's queue for it is drained; yields this worker's records."""
        self.run_id = self.store.start_run("sweep", self.target, str(self.experiment.path), self.experiment.name)
        self.rejected = self.source.rejected
        deadline = None if self.settings.time_seconds is None else time.monotonic() + self.settings.time_seconds
        for phase, fill, policy in ((SCREEN, self._fill_screen, self.settings.screen),
                                    (RESCREEN, self._fill_rescreen, self.settings.screen),
                                    (FINAL, self._fill_final, self.experiment.timing)):
            study = self._phase_study(phase, fill)
            space = self.experiment.space if phase == SCREEN and self.settings.method == "tuner" else None
            queue = StudyQueue(study, self.storage, self.target, self._expand, self.heartbeat,
                               lambda key, p=phase: self._done((p,), key), self._reconnect, space,
                               self.settings.budget)
            self.source = queue
            try:
                for _, record in self._evaluate(queue.next, policy, phase, deadline if phase == SCREEN else None,
                                                None):
                    yield record
            finally:
                queue.release()
            if deadline is not None and time.monotonic() > deadline:
                break  # out of time: the other workers (or a later one) finish the sweep
        self.source.rejected = self.rejected

    def _settle(self, candidate: Candidate, record: Record, phase: str) -> None:
        """In the worker thread: the record is stored, then its trial is told, so a claim never waits
        on this process's output (a reader that stopped reading stdout must not hold candidates)."""
        self._keep(self.run_id, candidate, record, phase)
        self.source.finish(candidate, record)

    def study_summary(self) -> str:
        """The study's finals on this kind of host, whichever worker measured them: how many, the best."""
        rows = list(self.store.rows(study=self.study_name, host_kind=self.host_kind, phases=(FINAL,)))
        ok = sorted((r for r in rows if r["status"] == "ok"), key=rank)
        text = f"{len(rows)} leaders re-measured on {self.host_kind}"
        if ok:
            best = ok[0]
            text += f", best {best['name']} {best['gflops']:.2f} GFLOP/s" + \
                ("" if best["fraction_of_peak"] is None else f" ({100 * best['fraction_of_peak']:.1f}% of peak)")
        return text
