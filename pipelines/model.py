"""The analytical model of a GEMM's register tile and cache blocking, from a target's facts alone.

After Low, Igual, Smith and Quintana-Orti, "Analytical Modeling Is Enough for High-Performance
BLIS" (TOMS 2016), in the form our micro-kernel takes (each k step: nv vector loads of B, mr
broadcasts of A on x86 or ceil(mr / lanes) vector loads of A on AArch64, mr x nv FMAs):

- register tile: the accumulators must cover the FMA latency times the FMAs issued per cycle at
  the kernel's width (else the pipes wait on dependences), and accumulators, B's vectors and A's
  registers must fit the register file; among the tiles that do, the one issuing the most FMAs
  per load wins (then the one with more accumulators). nv is 1 or 2 vectors: wider rows of C
  gain little once the kernel is compute-bound and leave fewer rows of A to reuse B over.
- kc: B's kc x nr micro-panel stays in half of L1 while A's micro-panels stream through the rest;
- mc: A's mc x kc block stays in half of L2;
- nc: B's kc x nc block stays in half of this core's share of L3 (MAX_NC where none is known).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kernels_mlir.spec import DTYPES, MAX_MR

from .targets import Target

#: Vectors of B per row of the tile the model considers (see the module's docstring).
ROW_VECTORS = (1, 2)
#: kc is a multiple of this (the k loop unrolls by up to 4 and prefetches by whole lines).
KC_STEP = 16
#: Bounds on the blocking: kc at least enough k steps to amortise C's loads and stores; nc where the
#: machine states no L3.
MIN_KC, MAX_KC, MAX_NC = 64, 1024, 4096


#: The word a config uses for a size the model chooses.
AUTO = "auto"


class NoModel(ValueError):
    """The target lacks a fact the model needs (its datapath: characterize the host)."""


@dataclass(frozen=True)
class TileChoice:
    mr: int
    nr: int
    #: Accumulator vectors, the least that hide the latency, and the registers the tile takes of all.
    accumulators: int
    needed: int
    registers: int
    available: int
    fmas_per_load: float

    @property
    def why(self) -> str:
        return (f"{self.mr}x{self.nr}: {self.accumulators} accumulators (latency x pipes needs {self.needed}), "
                f"{self.registers} of {self.available} vector registers, {self.fmas_per_load:.2f} FMAs per load")


@dataclass(frozen=True)
class BlockingChoice:
    kc: int
    mc: int
    nc: int
    why: str


def _registers(target: Target, mr: int, vectors: int, lanes: int) -> int:
    """Registers a tile takes: its accumulators, B's vectors, and A's (one broadcast register on x86, A's
    mr values in whole vectors on AArch64, where FMLA takes a lane of a vector)."""
    a = math.ceil(mr / lanes) if target.is_aarch64 else 1
    return mr * vectors + vectors + a


def register_tile(target: Target, dtype: str = "f32", bits: int | None = None) -> TileChoice:
    """The model's mr x nr for FMAs of `dtype` at `bits` (default the target's widest)."""
    path = target.datapath(dtype)
    if path is None:
        raise NoModel(f"{target.label}: no FMA datapath (`ukl peak --characterize` measures it)")
    bits = target.width(bits)
    lanes = target.lanes(dtype, bits)
    needed = math.ceil(path.latency * path.ops_per_cycle(bits))
    best = None
    for vectors in ROW_VECTORS:
        for mr in range(1, MAX_MR + 1):
            used = _registers(target, mr, vectors, lanes)
            if used > target.vector_registers or mr * vectors < needed:
                continue
            if target.is_aarch64 and mr % lanes:
                continue  # A's rows come in whole vectors
            loads = vectors + (math.ceil(mr / lanes) if target.is_aarch64 else mr)  # per k step
            choice = TileChoice(mr, vectors * lanes, mr * vectors, needed, used, target.vector_registers,
                                mr * vectors / loads)
            if best is None or (choice.fmas_per_load, choice.accumulators) > (best.fmas_per_load, best.accumulators):
                best = choice
    if best is None:
        raise NoModel(f"{target.label}: no tile fits {target.vector_registers} registers with {needed} accumulators")
    return best


def _round_down(value: float, step: int) -> int:
    return max(step, int(value) // step * step)


def blocking(target: Target, dtype: str, mr: int, nr: int, kc: int | None = None) -> BlockingChoice:
    """kc, mc and nc for an mr x nr kernel of `dtype` from the target's caches (per core); with `kc`
    given (a kernel's own depth), mc and nc for it."""
    l1, l2, l3 = target.caches
    if l1 is None or l2 is None:
        raise NoModel(f"{target.label}: its L1 and L2 sizes are not known")
    size = DTYPES[dtype].a.bytes
    kc = kc or min(MAX_KC, max(MIN_KC, _round_down(l1 / 2 / (nr * size), KC_STEP)))
    mc = _round_down(l2 / 2 / (kc * size), mr)
    nc = MAX_NC if l3 is None else min(MAX_NC, _round_down(l3 / 2 / (kc * size), nr))
    why = (f"kc {kc}: B's {kc}x{nr} panel in half of L1 ({l1 // 1024} KiB); mc {mc}: A's {mc}x{kc} block in half "
           f"of L2 ({l2 // 1024} KiB); nc {nc}: " + (f"B's {kc}x{nc} block in half of this core's L3 share "
                                                     f"({l3 // 1024} KiB)" if l3 is not None else "no L3 stated"))
    return BlockingChoice(kc, mc, nc, why)
