"""Run every strategy of an experiment, committing each result to the store as it is measured."""
from __future__ import annotations

from typing import Iterator

from tqdm import tqdm

from pipelines.targets import Target, get_target

from runner.config.experiment import Experiment, not_here, runnable_target, why_not_here
from runner.measure import reproducer
from runner.measure.lifecycle import Candidate, evaluate
from runner.measure.record import Record, rank
from runner.store.results import Store


def skipped(strategy, target: Target, why: str) -> Record:
    return Record(strategy, target.name, "skipped", error=why)


def _candidates(experiment: Experiment) -> Iterator[Candidate]:
    """Each strategy on each of its problems, on its own target where it names one."""
    kind = experiment.problem_kind
    for strategy in experiment.strategies:
        own = get_target(experiment.target_of(strategy))
        yield from (Candidate(strategy, problem, own) for problem in kind.problems(experiment.settings, strategy))


def run_experiment(experiment: Experiment, store: Store) -> Iterator[Record]:
    """Every candidate's record, in config order; each measured one is committed before it is yielded,
    and each failure leaves a reproducer beside the store."""
    target = runnable_target(experiment.target)
    run_id = store.start_run("run", target, str(experiment.path), experiment.name)
    total = len(experiment.strategies) * experiment.problem_kind.problems_per_strategy(experiment.settings)
    progress = tqdm(_candidates(experiment), total=total, desc=experiment.name, unit="candidate",
                    disable=None, leave=False)
    best: Record | None = None
    for candidate in progress:
        lead = "" if best is None else f"best {best.measurement.median:.1f} {best.strategy.name}; "
        progress.set_postfix_str(f"{lead}now {candidate.strategy.name}")
        if not candidate.target.runs_here:
            yield skipped(candidate.strategy, candidate.target,
                          f"target {candidate.target.name} does not run here: {not_here(candidate.target)}")
            continue
        why = why_not_here(candidate.strategy)
        if why:  # compiled and inspected elsewhere (ukl asm, ukl mca), never run here
            yield skipped(candidate.strategy, candidate.target, why)
            continue
        record = reproducer.attach(store.repro_root, candidate, evaluate(candidate, experiment.timing))
        store.add(run_id, record, candidate.target, experiment.name)
        if record.status == "ok" and (best is None or rank(record.to_json()) < rank(best.to_json())):
            best = record
        yield record
