"""Timed runs of compiled code: a strategy's bench loop and the target's FMA-peak kernel."""
from __future__ import annotations

import numpy as np

from kernels_mlir.harness import peak_flops_per_iteration
from kernels_mlir.names import BENCH, PEAK
from kernels_mlir.reference import make_operands
from kernels_mlir.spec import DTYPES, KernelSpec
from pipelines.codegen import MachineCode
from pipelines.compile import compile_peak
from pipelines.targets import Target

from .native import NativeFunction
from .timing import Measurement, TimingPolicy, measure


def measure_kernel(code: MachineCode, spec: KernelSpec, policy: TimingPolicy, cpu: int | None = None) -> Measurement:
    ops = make_operands(spec, seed=1)
    bench = NativeFunction(code, BENCH, [ops.a, ops.b, ops.c], n_scalars=1)
    return measure(bench, spec.flops, policy, cpu)


def measure_peak(target: Target, dtype: str, policy: TimingPolicy, cpu: int | None = None) -> Measurement:
    """FMA throughput of this core for `target`'s vector width, measured now, in this process."""
    code = compile_peak(target, dtype)
    lanes, chains = target.lanes(dtype), target.peak_accumulators
    np_dtype = DTYPES[dtype][0]
    # x * y stays small so the accumulators neither overflow nor go denormal over billions of FMAs.
    xy = np.stack([np.full(lanes, 1.0), np.full(lanes, 1e-6)]).astype(np_dtype)
    acc = np.zeros((chains, lanes), dtype=np_dtype)
    peak = NativeFunction(code, PEAK, [xy, acc], n_scalars=1)
    return measure(peak, peak_flops_per_iteration(lanes, chains), policy, cpu)
