"""The core's FMA datapath and caches, measured: what the target table states, read off the machine.

Per dtype and vector width, in one alternation with a clock loop (dependent one-cycle integer
adds: their rate is the clock, so every figure is in cycles whatever the turbo state):
- latency: one dependent FMA chain, cycles per FMA;
- throughput: as many independent chains as the registers allow, FMAs per cycle.
From these, the datapath: pipes (FMAs per cycle at 128 bits, where every core we know issues
whole ops), bits per pipe (the widest width still issuing that many), latency (at that width),
and from sysfs the cache sizes. A table row is checked against it and each disagreement said: a
core LLVM names after another (a Sapphire-Rapids-class core detected as `rocketlake`) shows here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kernels_mlir.harness import CLOCK, CLOCK_UNROLL, build_clock_loop
from pipelines.caches import cache_levels
from pipelines.codegen import generate
from pipelines.lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from pipelines.targets import Datapath, Target
from transforms.instructions import INSTRUCTIONS
from transforms.llvm_options import LLVMOptions

from runner.measure import datapath_cache
from runner.measure.native import NativeFunction
from runner.measure.peak import peak_kernel
from runner.measure.timing import alternated_rates, pinned_to_one_cpu

#: Which of the rounds' throughputs stands for it (see characterize).
THROUGHPUT_QUANTILE = 0.8
#: Ops per cycle within this share of the pipes still count as full issue (a 512-bit op on two
#: 256-bit pipes issues at half: far outside it).
FULL_ISSUE = 0.75


@dataclass(frozen=True)
class WidthFigures:
    dtype: str
    bits: int
    #: Cycles per FMA of one dependent chain, and FMAs per cycle over `chains` independent ones.
    latency_cycles: float
    ops_per_cycle: float
    chains: int


@dataclass(frozen=True)
class Characterization:
    cpu: str
    clock_ghz: float
    widths: tuple[WidthFigures, ...]
    #: (name, bytes) of each data or unified cache level of the measuring CPU, L1d first.
    caches: tuple[tuple[str, int], ...]
    #: Each dot-product instruction the core runs, at each width it exists at: `dtype` is the instruction's
    #: name, latency and issues per cycle as for FMAs.
    dots: tuple[WidthFigures, ...] = ()

    def datapath(self, dtype: str) -> Datapath:
        """Pipes, bits per pipe and latency (whole numbers) from the figures of `dtype`."""
        figures = sorted((w for w in self.widths if w.dtype == dtype), key=lambda w: w.bits)
        pipes = max(1, round(figures[0].ops_per_cycle))
        full = [w for w in figures if w.ops_per_cycle >= FULL_ISSUE * pipes]
        widest = full[-1] if full else figures[0]
        return Datapath(pipes, widest.bits, max(1, round(widest.latency_cycles)))

    def disagreements(self, target: Target, dtype: str = "f32") -> list[str]:
        """How the measured datapath differs from `target`'s row (empty when it agrees, or the row
        states none)."""
        row, measured = target.datapath(dtype), self.datapath(dtype)
        if row is None:
            return []
        said = []
        for field, unit in (("pipes", ""), ("bits_per_pipe", " bits"), ("latency", " cycles")):
            if getattr(row, field) != getattr(measured, field):
                said.append(f"{field}: the table says {getattr(row, field)}{unit}, measured "
                            f"{getattr(measured, field)}{unit}")
        return said

    def to_json(self) -> dict:
        return {"cpu": self.cpu, "clock_ghz": self.clock_ghz,
                "widths": [w.__dict__ for w in self.widths], "dots": [w.__dict__ for w in self.dots],
                "caches": dict(self.caches),
                "datapaths": {d: self.datapath(d).__dict__ for d in dict.fromkeys(w.dtype for w in self.widths)}}


def cache_sizes() -> tuple[tuple[str, int], ...]:
    """(name, bytes) of each data or unified cache level of this machine, L1d first (whole, not per core)."""
    return tuple((name, size) for name, size, _ in cache_levels())


@lru_cache(maxsize=None)
def _clock_code(target: Target):
    from mlir import ir
    with ir.Context(), ir.Location.unknown():
        module = build_clock_loop(target.triple.split("-")[0])
        lower_to_llvm_dialect(module)
        text = translate_to_llvm_ir(module)
    return generate(text, target, LLVMOptions(), jit=True)


def characterize(target: Target, dtypes: tuple[str, ...] = ("f32", "f64"), rounds: int = 10,
                 min_sample_seconds: float = 0.01) -> Characterization:
    """Measure `target` (which must run here) at every width its ISA has, for each dtype."""
    cell = np.zeros(1, dtype=np.int64)
    clock = NativeFunction(_clock_code(target), CLOCK, [cell], n_scalars=1)
    chains = max(2, target.vector_registers - 4)
    runs, work, keys = [clock], [CLOCK_UNROLL], []
    for dtype in dtypes:
        for bits in target.widths:
            lanes = target.lanes(dtype, bits)
            for count in (1, chains):
                peak = peak_kernel(target, dtype, bits, chains=count)
                runs.append(peak.run)
                work.append(peak.flops_per_iteration // (2 * lanes))  # FMAs per iteration
                keys.append((dtype, bits, count))
    dots = [(name, bits) for name, _ in target.dots if not target.lacks(name)
            for bits in target.widths if bits in INSTRUCTIONS[name].widths]
    for name, bits in dots:
        for count in (1, chains):
            inst = INSTRUCTIONS[name]
            peak = peak_kernel(target, inst.dtype, bits, name, chains=count)
            runs.append(peak.run)
            work.append(peak.flops_per_iteration // (2 * inst.macs(bits)))  # instructions per iteration
            keys.append((name, bits, count))
    with pinned_to_one_cpu():
        rates, _ = alternated_rates(runs, work, min_sample_seconds, rounds)  # rates: adds or FMAs per ns
    per_cycle = rates[:, 1:] / rates[:, :1]  # each FMA rate in the same round's clock
    # A latency is the median round's; a throughput the THROUGHPUT_QUANTILE round's: a busy neighbour on
    # the core's other hyperthread halves the FMA issue rate of whole stretches of rounds, but never
    # raises it (the clock loop, latency-bound, barely notices it).
    medians = dict(zip(keys, np.median(per_cycle, axis=0)))
    highs = dict(zip(keys, np.quantile(per_cycle, THROUGHPUT_QUANTILE, axis=0)))
    figures = [WidthFigures(what, bits, float(1 / medians[(what, bits, 1)]), float(highs[(what, bits, chains)]),
                            chains) for what, bits in [(d, b) for d in dtypes for b in target.widths] + dots]
    return Characterization(target.cpu, float(np.median(rates[:, 0])), tuple(figures[:-len(dots) or None]),
                            cache_sizes(), tuple(figures[len(figures) - len(dots):]))


@lru_cache(maxsize=None)
def with_measured_datapath(target: Target) -> Target:
    """`target`, or for a host the table has no row for (its datapath unknown), the same target with the
    datapath measured here (f32 and f64; once per process, and kept beside the results database for the
    next: datapath_cache): what the model chooses from and the theoretical peak is figured on. A row the
    table has is returned as it is: its figures are cited."""
    if target.fma is not None or not target.runs_here:
        return target
    found = datapath_cache.cached(target)
    earlier = found is not None and {"f32", "f64"} <= found.keys()
    if not earlier:
        measured = characterize(target, rounds=5, min_sample_seconds=0.005)
        found = {dtype: measured.datapath(dtype) for dtype in ("f32", "f64")}
        datapath_cache.store(target, found)
    f32 = found["f32"]
    return dataclasses.replace(target, fma=f32, fma_by_dtype=(("f64", found["f64"]),),
                               row=f"measured: {f32.pipes} x {f32.bits_per_pipe}-bit FMA pipes, latency {f32.latency}"
                                   + (" (an earlier process's measurement)" if earlier else ""))
