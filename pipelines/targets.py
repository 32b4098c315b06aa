"""The target table: every fact about a code-generation target, in one place.

A row separates the *registers* (width and count: what a kernel can hold) from the *FMA
datapath* (pipes x bits per pipe: what the core completes per cycle). They differ: Zen 4 has
512-bit registers but executes a 512-bit FMA on its two 256-bit pipes, so its f32 peak is
32 flop/cycle with ymm or zmm alike, while Sapphire Rapids has two 512-bit FMA units (64).

The measured peak (an FMA-throughput kernel at the kernel's own width, timed in alternation
with it) is what results are compared against; the theoretical figure from the datapath is
what llvm-mca predictions are compared against. A host the table does not know has no
theoretical figure: it is reported as unknown, never guessed.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Mapping

import llvmlite.binding as llvm

from kernels_mlir.spec import DTYPES
from transforms.errors import StrategyError
from transforms.instructions import INSTRUCTIONS
from transforms.plan import MIN_VECTOR_BITS

from .caches import cache_levels, per_core


class UnknownTarget(ValueError):
    pass


#: Environment variable capping the detected host ISA, to run as an AVX2-only machine would.
HOST_ISA_ENV = "UKL_HOST_ISA"
#: LLVM feature-name prefixes an "avx2" cap switches off: everything above x86-64-v3.
_ABOVE_AVX2 = ("avx512", "amx", "avx10", "evex512", "avxvnni", "avxifma", "avxneconvert")
HOST_ISA_CAPS = ("avx2",)

#: ISA features a row's vector code needs to run: what "runs here" checks against the host.
_AVX2 = ("avx", "avx2", "fma")
_AVX512 = (*_AVX2, "avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512cd")


@dataclass(frozen=True)
class Datapath:
    """FMA execution resources: `pipes` units, each completing one op of up to `bits_per_pipe`
    per cycle; a wider op occupies several pipes (a 512-bit FMA on 2 x 256-bit pipes counts as
    one op per cycle)."""

    pipes: int
    bits_per_pipe: int
    latency: int

    def ops_per_cycle(self, bits: int) -> float:
        return self.pipes * min(1.0, self.bits_per_pipe / bits)

    def flops_per_cycle(self, dtype: str, bits: int) -> float:
        """Peak flop/cycle with `bits`-wide vectors: a multiply and an add per lane per op."""
        lanes = bits // DTYPES[dtype].bits
        return 2 * lanes * self.ops_per_cycle(bits)


@dataclass(frozen=True)
class OuterProduct:
    """An SME outer-product instruction's issue rate (instructions per cycle) and latency (cycles)."""

    per_cycle: float
    latency: int


@dataclass(frozen=True)
class MatrixUnit:
    """A core's SME: its streaming vector length (None where the row is an architecture level, on which
    it is implementation-defined) and the outer products' rates where a figure is cited (none otherwise)."""

    svl_bits: int | None
    outer_products: tuple[tuple[str, OuterProduct], ...] = ()

    def rate(self, instruction: str) -> OuterProduct | None:
        return dict(self.outer_products).get(instruction)


def za_tiles(accumulator_bits: int) -> int:
    """ZA tiles of one accumulator element size: ZA is SVL x SVL bits, one tile is (SVL/e) x (SVL/e)
    elements of e bits, so there are e/8 of them (Arm ARM, SME: ZA0.S-ZA3.S, ZA0.D-ZA7.D)."""
    return accumulator_bits // 8


@dataclass(frozen=True)
class Target:
    name: str
    triple: str
    cpu: str
    #: LLVM feature string added to the CPU's own features ("" = the CPU's).
    features: str
    #: Widest vector register, and how many there are.
    vector_bits: int
    vector_registers: int
    #: FMA datapath; None when not known (a host CPU the table has no row for).
    fma: Datapath | None
    #: LLVM features the row's vector code needs; the host must have them all to run it.
    isa: tuple[str, ...] = ()
    #: Per-dtype datapaths where they differ from `fma` (dtype, datapath).
    fma_by_dtype: tuple[tuple[str, Datapath], ...] = ()
    #: True when code for this target runs natively here (and can be JIT-executed and timed).
    runs_here: bool = False
    #: For `host`: the table row its CPU resolved to (None: not in the table), and any ISA cap.
    row: str | None = None
    isa_cap: str | None = None
    #: Dot-product instructions the core has (transforms.instructions), each with its datapath, or
    #: None where the table has no cited throughput. The host has what its features allow.
    dots: tuple[tuple[str, Datapath | None], ...] = ()
    #: Bytes of L1d, L2 and of L3 per core (its share of a shared L3) from the row's source, each None
    #: where it states none; the host's are read from the system (pipelines.caches).
    caches: tuple[int | None, int | None, int | None] = (None, None, None)
    #: SVE's vector length in bits where the core has SVE outside streaming mode (None: no SVE, or on an
    #: architecture level, a length the implementation chooses: then "sve" is among its features).
    sve_bits: int | None = None
    #: SME, where the core has it.
    sme: MatrixUnit | None = None

    @property
    def has_sve(self) -> bool:
        return self.sve_bits is not None or "sve" in self.enabled

    def lacks_scalable(self, kind: str) -> str | None:
        """Why this target cannot run a `kind` ("sve", "sme") kernel, or None when it can."""
        if not self.is_aarch64:
            return f"{self.label} is not an Arm core"
        if kind == "sve" and not self.has_sve:
            return f"{self.label} has no SVE{' outside streaming mode' if self.sme else ''}"
        if kind == "sme" and self.sme is None:
            return f"{self.label} has no SME"
        return None

    def scalable_bits(self, kind: str) -> int | None:
        """The vector length a scalable kernel runs at on this core: SVE's, or SME's streaming one; None
        where the row does not fix it (an architecture level)."""
        return self.sve_bits if kind == "sve" else None if self.sme is None else self.sme.svl_bits

    @property
    def enabled(self) -> frozenset[str]:
        """The features its feature string switches on (the host's: everything LLVM detected, less any cap)."""
        return frozenset(f[1:] for f in self.features.split(",") if f.startswith("+"))

    def datapath(self, dtype: str) -> Datapath | None:
        return dict(self.fma_by_dtype).get(dtype, self.fma)

    def width(self, requested: int | None) -> int:
        """The vector width a kernel uses: `requested` (a strategy's vector_bits) or the widest."""
        if requested is None:
            return self.vector_bits
        widths = self.widths
        if requested not in widths:
            raise StrategyError(f"vector_bits: {self.name} ({self.cpu}) has {'/'.join(map(str, widths))}-bit "
                                f"vectors, got {requested}")
        return requested

    @property
    def widths(self) -> tuple[int, ...]:
        """Every vector width the ISA has, narrowest first."""
        return tuple(1 << b for b in range(MIN_VECTOR_BITS.bit_length() - 1, self.vector_bits.bit_length()))

    def lanes(self, dtype: str, bits: int | None = None) -> int:
        return (bits or self.vector_bits) // DTYPES[dtype].bits

    def peak_flops_per_cycle(self, dtype: str, bits: int | None = None, instruction: str | None = None
                             ) -> float | None:
        """Theoretical flop/cycle at `bits` (default the widest) of FMAs, or of a dot-product instruction
        (2 x its multiply-adds per issue); None when the datapath is unknown."""
        bits = bits or self.vector_bits
        if instruction is not None:
            path = dict(self.dots).get(instruction)
            return None if path is None else 2 * INSTRUCTIONS[instruction].macs(bits) * path.ops_per_cycle(bits)
        path = self.datapath(dtype)
        return None if path is None else path.flops_per_cycle(dtype, bits)

    def lacks(self, instruction: str) -> list[str]:
        """Why this target cannot execute `instruction`: its architecture, or the features it lacks
        (the host: the features LLVM detected; a row: the instructions the table gives the core)."""
        inst = INSTRUCTIONS[instruction]
        if not self.triple.startswith(inst.arch):
            return [inst.arch]
        if self.name == "host":
            return [f for f in inst.features if f not in self.enabled]
        return [] if instruction in dict(self.dots) else list(inst.features)

    @property
    def peak_accumulators(self) -> int:
        """Independent FMA chains for the peak kernel: the register file less room for operands.

        Always at least latency x pipes, so the FMA units never wait on a dependency.
        """
        need = 0 if self.fma is None else self.fma.latency * self.fma.pipes
        return max(self.vector_registers - 4, need)

    @property
    def is_aarch64(self) -> bool:
        return self.triple.startswith("aarch64")

    @property
    def label(self) -> str:
        """How outputs name the target: `host (znver4)`, or what is unknown about it."""
        if self.name != "host":
            return f"{self.name} ({self.cpu})"
        known = self.row or f"{self.cpu}: not in the target table, theoretical peak unknown"
        return f"host ({known}{', capped to ' + self.isa_cap if self.isa_cap else ''})"

    def to_dict(self) -> dict:
        """Every field, as JSON (the store records it; the isolated code generator rebuilds the target)."""
        return dataclasses.asdict(self)


def target_from_dict(data: dict) -> Target:
    """Inverse of Target.to_dict."""
    fma = None if data["fma"] is None else Datapath(**data["fma"])
    by_dtype = tuple((dtype, Datapath(**path)) for dtype, path in data["fma_by_dtype"])
    dots = tuple((name, None if path is None else Datapath(**path)) for name, path in data.get("dots", ()))
    caches = tuple(data.get("caches") or (None, None, None))  # older records have none
    sme = data.get("sme")
    if sme is not None:
        sme = MatrixUnit(sme["svl_bits"], tuple((name, OuterProduct(**rate)) for name, rate in sme["outer_products"]))
    return Target(**{**data, "fma": fma, "isa": tuple(data["isa"]), "fma_by_dtype": by_dtype, "dots": dots,
                     "caches": caches, "sme": sme})


_X86 = "x86_64-unknown-linux-gnu"
_ARM = "aarch64-unknown-linux-gnu"

# Each datapath cites where its numbers come from. "SOG" = the vendor's software optimization guide.
# Dot-product rows (`dots`): which instructions the core has comes from the vendor's ISA documentation;
# a throughput is given only where it is cited, else None (the measured peak is still available).
_VNNI_BF16 = (("vdpbf16ps", None), ("vpdpbusd", None))
# The Arm throughputs are LLVM 22's scheduling models for those cores (AArch64SchedNeoverseN1.td,
# V1.td, V2.td, transcribed from each core's SOG; `llvm-mca -instruction-info` prints them):
# reciprocal throughput 0.25 = four 128-bit pipes, 0.5 = two. Cortex-A76 (modelled as A57) and
# Apple M1 have no cited figure. LLVM's x86 models are not used for dot products: its Sapphire
# Rapids model disagrees with what this harness measures for FMAs (one 512-bit port, not two).
_K, _M = 1 << 10, 1 << 20
#: Cache sizes: each vendor's optimization guide or TRM for the part named (per core; a shared L3 as
#: each core's share); Apple M1's 12 MiB L2 is shared by four performance cores.
TARGETS: dict[str, Target] = {t.name: t for t in (
    # ISA levels, not cores: for a strategy tied to an ISA (it runs on any host that has it). A
    # level has no FMA datapath, so its theoretical peak is unknown; its measured peak is the host's.
    Target("x86-64-v3", _X86, "x86-64-v3", "", 256, 16, None, _AVX2),
    Target("x86-64-v4", _X86, "x86-64-v4", "", 512, 32, None, _AVX512),
    # AMD SOG for Family 19h (doc 56665), 2.11: FP pipes 0 and 1 each do a 256-bit FMA, latency 4.
    Target("znver3", _X86, "znver3", "", 256, 16, Datapath(2, 256, 4), _AVX2,
           caches=(32 * _K, 512 * _K, 4 * _M)),
    # AMD SOG for Family 19h Zen 4 (doc 57647), 2.11: 512-bit ops execute on the two 256-bit FMA
    # pipes (one 512-bit FMA per cycle), latency 4; measured here: 32 flop/cycle ymm and zmm.
    Target("znver4", _X86, "znver4", "", 512, 32, Datapath(2, 256, 4), _AVX512, dots=_VNNI_BF16,
           caches=(32 * _K, 1 * _M, 4 * _M)),
    # AMD SOG for Family 1Ah (doc 58455), 2.11: a full 512-bit datapath, two FMA pipes, latency 4
    # (desktop and server parts; some mobile parts keep the 256-bit datapath).
    Target("znver5", _X86, "znver5", "", 512, 32, Datapath(2, 512, 4), _AVX512, dots=_VNNI_BF16,
           caches=(48 * _K, 1 * _M, 4 * _M)),
    # Intel Optimization Reference Manual (248966), Skylake Server: FMA units on ports 0+1 (fused)
    # and 5, latency 4 (two 512-bit units on Gold 6100 / Platinum; one on some SKUs).
    Target("skylake-avx512", _X86, "skylake-avx512", "", 512, 32, Datapath(2, 512, 4), _AVX512,
           caches=(32 * _K, 1 * _M, 1408 * _K)),
    # Same manual, Ice Lake Server (Sunny Cove): two 512-bit FMA units (ports 0+1 and 5), latency 4.
    Target("icelake-server", _X86, "icelake-server", "", 512, 32, Datapath(2, 512, 4), _AVX512,
           dots=(("vpdpbusd", None),), caches=(48 * _K, 1280 * _K, 1536 * _K)),
    # Same manual, Sapphire Rapids (Golden Cove server): two 512-bit FMA units, latency 4.
    Target("sapphirerapids", _X86, "sapphirerapids", "", 512, 32, Datapath(2, 512, 4), _AVX512,
           dots=_VNNI_BF16, caches=(48 * _K, 2 * _M, 1920 * _K)),
    # Arm Neoverse N1 SOG, 3.15: FMLA (vector) on pipes V0/V1, throughput 2, latency 4. Its TRM: 64 KiB
    # L1d, 1 MiB L2 (as configured on Graviton2 and Altra); the system cache is the SoC's: none stated.
    Target("neoverse-n1", _ARM, "neoverse-n1", "+neon", 128, 32, Datapath(2, 128, 4), ("neon",),
           dots=(("sdot", Datapath(2, 128, 2)),), caches=(64 * _K, 1 * _M, None)),
    # Arm Neoverse V1 SOG, 3.15: four 128-bit FP pipes V0-V3 take FMLA, latency 4; its TRM: SVE with a
    # 256-bit vector length, whose FMLA z occupies two of the pipes (two per cycle).
    Target("neoverse-v1", _ARM, "neoverse-v1", "+neon", 128, 32, Datapath(4, 128, 4), ("neon",),
           dots=(("sdot", Datapath(4, 128, 3)), ("smmla", Datapath(4, 128, 3)), ("bfmmla", Datapath(4, 128, 5))),
           caches=(64 * _K, 1 * _M, None), sve_bits=256),
    # Arm Neoverse V2 SOG, 3.15: four 128-bit FP pipes V0-V3 take FMLA, latency 4; its TRM: SVE2 with a
    # 128-bit vector length.
    Target("neoverse-v2", _ARM, "neoverse-v2", "+neon", 128, 32, Datapath(4, 128, 4), ("neon",),
           dots=(("sdot", Datapath(4, 128, 3)), ("smmla", Datapath(4, 128, 3)), ("bfmmla", Datapath(4, 128, 6))),
           caches=(64 * _K, 1 * _M, None), sve_bits=128),
    # Fujitsu A64FX Microarchitecture Manual: SVE with a 512-bit vector length, two FP pipes (FLA, FLB)
    # each completing a 512-bit FMA per cycle, latency 9; 64 KiB L1d; 8 MiB L2 per 12-core CMG (a core's
    # share here). Fixed-width kernels use its 128-bit NEON registers on the same pipes.
    Target("a64fx", _ARM, "a64fx", "+neon", 128, 32, Datapath(2, 512, 9), ("neon",),
           caches=(64 * _K, 8 * _M // 12, None), sve_bits=512),
    # Apple M4 P-core: SME with a 512-bit streaming vector length and no SVE outside streaming mode
    # (Remke and Breuer, "Hello SME!", arXiv:2409.18779). Outer-product rates and latencies measured by
    # T. Zakharko (github.com/tzakharko/m4-sme-exploration, reports/02-sme-outer-product.md): FMOPA f32
    # 2000 GFLOP/s (512 flop each) at the 3.9 GHz that implies, one per cycle, latency 4; BFMOPA and the
    # 4-way SMOPA half that rate per instruction (2000 GFLOP/s, 4000 GOP/s), latencies 8 and 4. No cited
    # NEON datapath or cache sizes for M4: none given.
    Target("apple-m4", _ARM, "apple-m4", "+neon", 128, 32, None, ("neon",),
           sme=MatrixUnit(512, (("fmopa", OuterProduct(1.0, 4)), ("bfmopa", OuterProduct(0.5, 8)),
                                ("smopa", OuterProduct(0.5, 4))))),
    # The architecture level Armv9.2-A with SVE2 and SME (bf16, i8mm): both vector lengths are the
    # implementation's choice and no rate is architectural; kernels for it run at any length.
    Target("armv9.2-a-sme", _ARM, "generic", "+v9.2a,+neon,+sve,+sve2,+sme,+bf16,+i8mm", 128, 32, None, ("neon",),
           sme=MatrixUnit(None)),
    # Arm Cortex-A76 SOG, 3.15: FMLA on pipes V0/V1, latency 4.
    Target("cortex-a76", _ARM, "cortex-a76", "+neon", 128, 32, Datapath(2, 128, 4), ("neon",),
           dots=(("sdot", None),), caches=(64 * _K, 512 * _K, None)),
    # Apple M1 Firestorm, measured by Dougall Johnson (dougallj.github.io/applecpu/firestorm-simd.html):
    # four 128-bit FP/SIMD pipes take FMLA, latency 3 as used for the peak kernel's chains.
    Target("apple-m1", _ARM, "apple-m1", "+neon", 128, 32, Datapath(4, 128, 3), ("neon",),
           dots=(("sdot", None),), caches=(128 * _K, 3 * _M, None)),
)}


def resolve_host(cpu: str, feature_map: Mapping[str, bool], triple: str, cap: str | None) -> Target:
    """The `host` target from what LLVM detects: `cpu` picks the table row (its datapath), the
    features decide the registers. `cap` ("avx2") switches off every feature above AVX2."""
    if cap is not None and cap not in HOST_ISA_CAPS:
        raise UnknownTarget(f"{HOST_ISA_ENV}: must be one of {list(HOST_ISA_CAPS)}, got {cap!r}")
    enabled = {name for name, on in feature_map.items() if on}
    if cap == "avx2":
        enabled = {name for name in enabled if not name.startswith(_ABOVE_AVX2)}
    features = ",".join(f"{'+' if name in enabled else '-'}{name}" for name in sorted(feature_map))
    row = next((t for t in TARGETS.values() if t.cpu == cpu and t.triple.split("-")[0] == triple.split("-")[0]),
               None)
    if triple.startswith("aarch64"):
        bits, registers = 128, 32
    elif "avx512f" in enabled:
        bits, registers = 512, 32
    elif "avx" in enabled:
        bits, registers = 256, 16
    else:
        bits, registers = 128, 16
    isa = tuple(f for f in (_AVX512 if bits == 512 else _AVX2 if bits == 256 else ()) if f in enabled)
    dots = tuple((name, path) for name, path in (() if row is None else row.dots)
                 if all(f in enabled for f in INSTRUCTIONS[name].features))
    return Target("host", triple, cpu, features, bits, registers, None if row is None else row.fma, isa,
                  () if row is None else row.fma_by_dtype, runs_here=True,
                  row=None if row is None else row.name, isa_cap=cap, dots=dots)


@lru_cache(maxsize=1)
def host_target() -> Target:
    """The machine we run on (LLVM's host detection), capped by $UKL_HOST_ISA when set, with the caches
    the system reports."""
    host = resolve_host(llvm.get_host_cpu_name(), llvm.get_host_cpu_features(), llvm.get_process_triple(),
                        os.environ.get(HOST_ISA_ENV) or None)
    return replace(host, caches=per_core(cache_levels()))


def missing_features(target: Target, host: Target) -> list[str]:
    """The features `target`'s code needs that the host lacks (or the architecture, for another one)."""
    arch = target.triple.split("-")[0]
    if arch != host.triple.split("-")[0]:
        return [arch]
    return [f for f in target.isa if f not in host.enabled]


def runnable_as(target: Target, host: Target) -> Target:
    """`target` marked as running here when the host has every feature its code needs; its code then
    leaves out whatever else the host lacks (a znver3 kernel on an Intel host gets no SSE4a)."""
    if missing_features(target, host):
        return target
    lacking = ",".join(f for f in host.features.split(",") if f.startswith("-"))
    return replace(target, features=",".join(filter(None, (target.features, lacking))), runs_here=True)


def target_names() -> list[str]:
    return ["host", *TARGETS]


def get_target(name: str) -> Target:
    if name == "host":
        return host_target()
    if name not in TARGETS:
        raise UnknownTarget(f"unknown target {name!r} (known: {', '.join(target_names())})")
    return runnable_as(TARGETS[name], host_target())
