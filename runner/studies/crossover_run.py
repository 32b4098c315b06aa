"""Running a crossover config: every route on every shape, verified, then timed in alternation."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from kernels_mlir.small_gemm import SmallGemmSpec
from pipelines.targets import Target

from runner.config.experiment import ConfigError, Experiment, Route
from runner.kinds.gemm import probe
from runner.measure.baselines import numpy_matmul
from runner.measure.onnxruntime_matmul import ort_matmul
from runner.measure.lifecycle import Candidate, build_or_record
from runner.kinds import launch
from runner.measure.record import Record
from runner.measure.stats import ratio_with_ci
from runner.measure.timing import alternated_rates, pinned_to_one_cpu
from runner.measure.verify import verify
from runner.studies.crossover import ShapePoint


def _runner(route: Route, shape: tuple[int, int, int], dtype: str, target: Target) -> tuple[Callable[[int], None], int]:
    """(`run(n)`: n calls of this shape by `route`, verified first for our code; products per call)."""
    if route.strategy is None:
        ops = probe(shape, dtype).operands(seed=1)
        if route.library == "onnxruntime":
            chain = ort_matmul(SmallGemmSpec(*shape, dtype=dtype), ops.a)
            return chain.run, chain.products
        return numpy_matmul(ops.a, ops.b, ops.c).run, 1
    spec = route.spec(shape)
    built = build_or_record(Candidate(route.strategy, spec, target))
    if isinstance(built, Record):
        raise ConfigError(f"route {route.name!r} does not compile at {shape}: {built.error}")
    check = verify(built.code, spec)
    if not check.correct:
        raise ConfigError(f"route {route.name!r} computes a wrong answer at {shape}: {check.message}")
    return launch(built.code, spec, spec.operands(seed=1), bench=True), 1


def run_crossover(experiment: Experiment, target: Target) -> Iterator[ShapePoint]:
    settings, timing = experiment.crossover, experiment.timing
    for shape in tqdm(settings.shapes, desc=experiment.name, unit="shape", disable=None, leave=False):
        runs, products = zip(*(_runner(route, shape, settings.dtype, target) for route in settings.routes))
        flops = 2 * shape[0] * shape[1] * shape[2]
        with threadpool_limits(limits=1, user_api="blas"), pinned_to_one_cpu():
            rates, _ = alternated_rates(list(runs), [flops * p for p in products], timing.min_sample_seconds,
                                        timing.samples)
        yield ShapePoint(shape, tuple(float(g) for g in np.median(rates, axis=0)), *ratio_with_ci(rates))
