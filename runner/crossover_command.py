"""Running a crossover config: every route on every shape, verified, then timed in alternation."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.names import GEMM_BENCH
from pipelines.compile_gemm import compile_gemm
from pipelines.targets import Target

from .config import ConfigError, Experiment, Route
from .crossover import ShapePoint, ratio_with_ci
from .gemm_bench import gemm_operands, verify_gemm
from .native import NativeFunction
from .timing import alternated_rates, pinned_to_one_cpu


def _runner(route: Route, shape: tuple[int, int, int], dtype: str, target: Target) -> Callable[[int], None]:
    """`run(n)`: n products of this shape by `route` (verified first, for our GEMM)."""
    if route.strategy is None:
        ops = gemm_operands(GemmSpec(*shape, dtype=dtype), seed=1)
        out = np.empty_like(ops.c)

        def numpy_route(n: int) -> None:
            for _ in range(n):
                np.matmul(ops.a, ops.b, out=out)
        return numpy_route
    spec = route.spec(shape)
    code = compile_gemm(spec, route.strategy, target).code
    check = verify_gemm(code, spec)
    if not check.correct:
        raise ConfigError(f"route {route.name!r} computes a wrong answer at {shape}: {check.message}")
    ops = gemm_operands(spec, seed=1)
    return NativeFunction(code, GEMM_BENCH, [ops.a, ops.b, ops.c], n_scalars=1)


def run_crossover(experiment: Experiment, target: Target) -> Iterator[ShapePoint]:
    settings, timing = experiment.crossover, experiment.timing
    for shape in tqdm(settings.shapes, desc=experiment.name, unit="shape", disable=None, leave=False):
        runs = [_runner(route, shape, settings.dtype, target) for route in settings.routes]
        flops = 2 * shape[0] * shape[1] * shape[2]
        with threadpool_limits(limits=1, user_api="blas"), pinned_to_one_cpu():
            rates, _ = alternated_rates(runs, [flops] * len(runs), timing.min_sample_seconds, timing.samples)
        yield ShapePoint(shape, tuple(float(g) for g in np.median(rates, axis=0)), *ratio_with_ci(rates))
