"""Library baselines a problem is timed against, sample by sample in the same alternation as ours.

A GEMM is compared with `numpy.matmul` (OpenBLAS, limited to one thread by threadpoolctl). It can
only be called from Python, so its samples include one Python call per product (about 1-2 us,
reported as `baseline_call_overhead_us`: negligible from a few hundred thousand flops up).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kernels_mlir.operands import Operands
from kernels_mlir.problem import Problem

from runner.measure.timing import seconds_for

NUMPY = "numpy.matmul (OpenBLAS, 1 thread)"


@dataclass(frozen=True)
class Baseline:
    name: str
    #: run(n): n products on the candidate's own operands.
    run: Callable[[int], None]
    #: Seconds per call a Python loop costs around it (0 for native code).
    call_overhead: Callable[[], float]


def baselines_for(problem: Problem, ops: Operands) -> list[Baseline]:
    """What `problem` is measured against: nothing for a micro-kernel, numpy.matmul for a GEMM."""
    return [numpy_matmul(ops.a, ops.b, ops.c)] if problem.kind == "gemm" else []


def numpy_matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Baseline:
    out = np.empty_like(c)

    def run(n: int) -> None:
        for _ in range(n):
            np.matmul(a, b, out=out)

    def call_overhead() -> float:
        """Seconds per call of the same Python loop around a 1x1x1 product."""
        x, y, z = (np.ones((1, 1), dtype=a.dtype) for _ in range(3))

        def loop(n: int) -> None:
            for _ in range(n):
                np.matmul(x, y, out=z)
        return seconds_for(loop, 20000) / 20000
    return Baseline(NUMPY, run, call_overhead)
