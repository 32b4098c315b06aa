"""A full GEMM against NumPy's BLAS (OpenBLAS, one thread), verified and timed in the same process.

Our GEMM is timed inside generated code (`ukl_gemm_bench` calls it n times); `numpy.matmul`
can only be called from Python, so its samples include one Python call per GEMM (about 1-2 us,
reported as `baseline_call_overhead_us`: negligible from a few hundred thousand flops up). The
two are timed alternately, sample by sample, so drift hits both; the ratio of each pair is one
observation and its bootstrap interval says whether ours is faster, slower or even.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.names import GEMM, GEMM_BENCH
from kernels_mlir.reference import error_bound, reference
from pipelines.codegen import MachineCode

from .benchmark import PeakKernel, alongside_peak
from .crossover import ratio_with_ci
from .native import NativeFunction
from .timing import Measurement, TimingPolicy, pinned_to_one_cpu, seconds_for
from .verify import Verification, judge


@dataclass(frozen=True)
class GemmOperands:
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def gemm_operands(spec: GemmSpec, seed: int = 0) -> GemmOperands:
    rng = np.random.default_rng(seed)
    dt = spec.np_dtype
    return GemmOperands(rng.uniform(-1, 1, (spec.m, spec.k)).astype(dt),
                        rng.uniform(-1, 1, (spec.k, spec.n)).astype(dt),
                        rng.uniform(-1, 1, (spec.m, spec.n)).astype(dt))


def verify_gemm(code: MachineCode, spec: GemmSpec, seed: int = 0) -> Verification:
    ops = gemm_operands(spec, seed)
    start = ops.c if spec.accumulate else np.zeros_like(ops.c)
    expected = reference(ops.a.T, ops.b, start)
    bound = error_bound(ops.a.T, ops.b, start)
    NativeFunction(code, GEMM, [ops.a, ops.b, ops.c])()
    return judge(ops.c, expected, bound)


@dataclass(frozen=True)
class GemmMeasurement:
    ours: Measurement
    baseline: Measurement
    #: The FMA peak at the micro-kernel's width, sampled in the same alternation.
    peak: Measurement
    #: Per-pair rate(ours) / rate(baseline), its median and 95% bootstrap interval.
    ratios: tuple[float, ...]
    ratio: float
    ci_low: float
    ci_high: float
    baseline_call_overhead_us: float


def _python_call_overhead(ops: GemmOperands) -> float:
    """Seconds per call of a Python loop around numpy.matmul on a 1x1x1 problem."""
    a, b, c = (np.ones((1, 1), dtype=ops.a.dtype) for _ in range(3))

    def loop(n: int) -> None:
        for _ in range(n):
            np.matmul(a, b, out=c)
    return seconds_for(loop, 20000) / 20000


def measure_gemm(code: MachineCode, spec: GemmSpec, policy: TimingPolicy, peak: PeakKernel,
                 cpu: int | None = None) -> GemmMeasurement:
    """Ours, numpy.matmul and the FMA peak, one sample of each per rotating round."""
    ops = gemm_operands(spec, seed=1)
    ours = NativeFunction(code, GEMM_BENCH, [ops.a, ops.b, ops.c], n_scalars=1)
    out = np.empty_like(ops.c)

    def baseline(n: int) -> None:
        for _ in range(n):
            np.matmul(ops.a, ops.b, out=out)

    with threadpool_limits(limits=1, user_api="blas"):
        (ours_m, base_m), peak_m = alongside_peak([ours, baseline], [spec.flops] * 2, peak, policy, cpu)
        with pinned_to_one_cpu(cpu):
            overhead = _python_call_overhead(ops)
    rates = np.column_stack([ours_m.gflops_samples, base_m.gflops_samples])
    ratio, low, high = ratio_with_ci(rates)
    return GemmMeasurement(ours_m, base_m, peak_m, tuple(float(r) for r in rates[:, 0] / rates[:, 1]), ratio, low,
                           high, overhead * 1e6)
