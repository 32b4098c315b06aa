"""Run every strategy of an experiment, committing each result to the store as it is measured."""
from __future__ import annotations

from typing import Callable, Iterator

from tqdm import tqdm

from pipelines.targets import Target, get_target

from .benchmark import measure_peak
from .config import ConfigError, Experiment
from .evaluate import evaluate
from .gemm_experiment import gemm_records
from .record import Record
from .store import Store
from .timing import Measurement


def runnable_target(name: str) -> Target:
    target = get_target(name)
    if not target.runs_here:
        raise ConfigError(f"target {name!r} does not run on this host ({target.triple}, {target.cpu}): "
                          "it can be compiled and analysed, not timed")
    return target


def run_experiment(experiment: Experiment, store: Store,
                   on_peak: Callable[[str, Measurement], None] = lambda dtype, m: None) -> Iterator[Record]:
    target = runnable_target(experiment.target)
    run_id = store.start_run("run", target, str(experiment.path), experiment.name)
    peaks: dict[str, Measurement] = {}
    for dtype in sorted({s.kernel.dtype for s in experiment.strategies}):
        peaks[dtype] = measure_peak(target, dtype, experiment.timing)
        store.add_peak(run_id, dtype, peaks[dtype].median, peaks[dtype].gflops_samples)
        on_peak(dtype, peaks[dtype])
    if experiment.kind == "gemm":
        records = gemm_records(experiment, target, peaks)
        total = len(experiment.strategies) * len(experiment.gemm.shapes)
    else:
        records = (evaluate(s, target, experiment.timing, peaks[s.kernel.dtype]) for s in experiment.strategies)
        total = len(experiment.strategies)
    progress = tqdm(records, total=total, desc=experiment.name, unit="strategy", disable=None, leave=False)
    for record in progress:
        progress.set_postfix_str(record.strategy.name)
        store.add(run_id, record, target, experiment.name)
        yield record
