"""Timed runs of compiled code: a strategy's bench loop, alternated with the FMA-peak kernel at the
kernel's own width, so the fraction of peak compares two figures taken under the same conditions."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kernels_mlir.harness import peak_flops_per_iteration
from kernels_mlir.names import PEAK
from kernels_mlir.spec import DTYPES
from pipelines.compile import compile_peak
from pipelines.targets import Target
from transforms.instructions import INSTRUCTIONS

from runner.measure.native import NativeFunction
from runner.measure.parallel import Team
from runner.measure.timing import Measurement, TimingPolicy, alternated_rates, measure, pinned_to_one_cpu


@dataclass(frozen=True)
class PeakKernel:
    """The FMA-throughput kernel of one (target, dtype, width), ready to time."""

    run: Callable[[int], None]
    flops_per_iteration: int
    dtype: str
    bits: int
    lanes: int
    chains: int


def peak_kernel(target: Target, dtype: str, bits: int | None = None, instruction: str | None = None,
                chains: int | None = None) -> PeakKernel:
    """The peak of FMAs at `bits`, or of the dot-product `instruction` a low-precision kernel uses, over
    `chains` independent accumulators (default the target's peak_accumulators)."""
    bits = bits or target.vector_bits
    chains = chains or target.peak_accumulators
    code = compile_peak(target, dtype, bits, instruction, chains)
    d = DTYPES[dtype]
    if instruction is None:
        inputs = lanes = macs = target.lanes(dtype, bits)
    else:
        inst = INSTRUCTIONS[instruction]
        inputs, macs = inst.input_count(bits), inst.macs(bits)
        lanes = inst.tile(bits)[0] * inst.tile(bits)[1]
    # x * y stays small so the accumulators neither overflow nor go denormal over billions of FMAs
    # (integers wrap harmlessly).
    xy = np.stack([np.full(inputs, 1.0), np.full(inputs, 0.0 if d.a.exact else 1e-6)]).astype(d.a.numpy)
    acc = np.zeros((chains, lanes), dtype=d.acc.numpy)
    run = NativeFunction(code, PEAK, [xy, acc], n_scalars=1)
    return PeakKernel(run, peak_flops_per_iteration(macs, chains), dtype, bits, lanes, chains)


def parallel_peak(kernels: list[PeakKernel]) -> PeakKernel:
    """The peak of as many cores as `kernels` (one each, own buffers), run together: what a
    multi-threaded GEMM is compared with. One kernel is returned as it is."""
    if len(kernels) == 1:
        return kernels[0]
    team = Team(len(kernels))
    first = kernels[0]

    def run(n: int) -> None:
        team.run([lambda k=k: k.run(n) for k in kernels])
    return dataclasses.replace(first, run=run, flops_per_iteration=first.flops_per_iteration * len(kernels))


def measure_peak(target: Target, dtype: str, policy: TimingPolicy, cpu: int | None = None,
                 bits: int | None = None, instruction: str | None = None) -> Measurement:
    """FMA (or dot-product `instruction`) throughput of this core at `bits` (default: the target's
    widest), measured alone (`ukl peak`)."""
    peak = peak_kernel(target, dtype, bits, instruction)
    return measure(peak.run, peak.flops_per_iteration, policy, cpu)


def alongside_peak(runs: list[Callable[[int], None]], flops: list[int], peak: PeakKernel, policy: TimingPolicy,
                   cpu: int | set[int] | None = None) -> tuple[list[Measurement], Measurement]:
    """Time `runs` and the peak kernel in rotating alternation, one sample of each per round."""
    with pinned_to_one_cpu(cpu):
        rates, counts = alternated_rates([*runs, peak.run], [*flops, peak.flops_per_iteration],
                                         policy.min_sample_seconds, policy.samples)
    measured = [Measurement(tuple(float(x) for x in rates[:, i]), counts[i], f) for i, f in
                enumerate([*flops, peak.flops_per_iteration])]
    return measured[:-1], measured[-1]
