"""Run every strategy of an experiment, committing each result to the store as it is measured."""
from __future__ import annotations

from typing import Iterator

from tqdm import tqdm

from pipelines.targets import Target, get_target, host_target, missing_features

from .config import ConfigError, Experiment
from .lifecycle import Candidate, evaluate
from .record import Record
from .store import Store


def runnable_target(name: str) -> Target:
    target = get_target(name)
    if not target.runs_here:
        raise ConfigError(f"target {name!r} does not run on this host ({not_here(target)}): "
                          "it can be compiled and analysed, not timed")
    return target


def not_here(target: Target) -> str:
    """Why `target`'s code cannot run on this host, in a few words."""
    return f"{host_target().label} lacks {', '.join(missing_features(target, host_target()))}"


def skipped(strategy, target: Target) -> Record:
    return Record(strategy, target.name, "skipped", error=f"target {target.name} does not run here: {not_here(target)}")


def _microkernel_records(experiment: Experiment) -> Iterator[tuple[Record, Target]]:
    for strategy in experiment.strategies:
        target = get_target(experiment.target_of(strategy))
        if not target.runs_here:
            yield skipped(strategy, target), target
            continue
        yield evaluate(Candidate.microkernel(strategy, target), experiment.timing), target


def _gemm_records(experiment: Experiment, target: Target) -> Iterator[tuple[Record, Target]]:
    for strategy in experiment.strategies:
        for shape in experiment.gemm.shapes:
            candidate = Candidate(strategy, experiment.gemm.spec(strategy, shape), target)
            yield evaluate(candidate, experiment.timing), target


def run_experiment(experiment: Experiment, store: Store) -> Iterator[Record]:
    """Every strategy's record, in config order; each measured one is committed before it is yielded."""
    target = runnable_target(experiment.target)
    run_id = store.start_run("run", target, str(experiment.path), experiment.name)
    if experiment.kind == "gemm":
        records = _gemm_records(experiment, target)
        total = len(experiment.strategies) * len(experiment.gemm.shapes)
    else:
        records = _microkernel_records(experiment)
        total = len(experiment.strategies)
    progress = tqdm(records, total=total, desc=experiment.name, unit="strategy", disable=None, leave=False)
    for record, record_target in progress:
        progress.set_postfix_str(record.strategy.name)
        if record.status != "skipped":
            store.add(run_id, record, record_target, experiment.name)
        yield record
