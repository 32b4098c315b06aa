"""The target table: every fact about a code-generation target, in one place.

Theoretical peak per cycle = FMA pipes x lanes x 2. The measured peak (an FMA-throughput
kernel run in the same process) is what results are compared against; the theoretical
figure is what llvm-mca predictions are compared against for targets we cannot run.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import llvmlite.binding as llvm

from kernels_mlir.spec import DTYPES


class UnknownTarget(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    name: str
    triple: str
    cpu: str
    features: str
    vector_bits: int
    vector_registers: int
    fma_pipes: int
    fma_latency: int
    #: True when code for this target runs natively here (and can be JIT-executed and timed).
    runs_here: bool = False

    def lanes(self, dtype: str) -> int:
        return self.vector_bits // (8 * DTYPES[dtype][1])

    def peak_flops_per_cycle(self, dtype: str) -> int:
        return 2 * self.fma_pipes * self.lanes(dtype)

    @property
    def peak_accumulators(self) -> int:
        """Independent FMA chains for the peak kernel: the register file less room for operands.

        Always at least latency x pipes, so the FMA units never wait on a dependency.
        """
        return max(self.vector_registers - 4, self.fma_latency * self.fma_pipes)

    @property
    def is_aarch64(self) -> bool:
        return self.triple.startswith("aarch64")

    def to_dict(self) -> dict:
        return {"name": self.name, "triple": self.triple, "cpu": self.cpu, "features": self.features,
                "vector_bits": self.vector_bits, "vector_registers": self.vector_registers,
                "fma_pipes": self.fma_pipes, "fma_latency": self.fma_latency}


_X86 = "x86_64-unknown-linux-gnu"
_ARM = "aarch64-unknown-linux-gnu"

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("znver3", _X86, "znver3", "", 256, 16, 2, 4),
    Target("skylake-avx512", _X86, "skylake-avx512", "", 512, 32, 2, 4),
    Target("neoverse-n1", _ARM, "neoverse-n1", "+neon", 128, 32, 2, 4),
    Target("neoverse-v1", _ARM, "neoverse-v1", "+neon", 128, 32, 4, 4),
    Target("neoverse-v2", _ARM, "neoverse-v2", "+neon", 128, 32, 4, 4),
    Target("cortex-a76", _ARM, "cortex-a76", "+neon", 128, 32, 2, 4),
    Target("apple-m1", _ARM, "apple-m1", "+neon", 128, 32, 4, 3),
)}


@lru_cache(maxsize=1)
def host_target() -> Target:
    """The machine we run on: CPU name and features from LLVM's host detection."""
    cpu = llvm.get_host_cpu_name()
    feature_map = llvm.get_host_cpu_features()
    features = feature_map.flatten()
    enabled = {name for name, on in feature_map.items() if on}
    triple = llvm.get_process_triple()
    known = TARGETS.get(cpu)
    if triple.startswith("aarch64"):
        bits, registers = 128, 32
    elif "avx512f" in enabled:
        bits, registers = 512, 32
    elif "avx" in enabled:
        bits, registers = 256, 16
    else:
        bits, registers = 128, 16
    pipes, latency = (known.fma_pipes, known.fma_latency) if known else (2, 4)
    return Target("host", triple, cpu, features, bits, registers, pipes, latency, runs_here=True)


def target_names() -> list[str]:
    return ["host", *TARGETS]


def get_target(name: str) -> Target:
    if name == "host":
        return host_target()
    if name not in TARGETS:
        raise UnknownTarget(f"unknown target {name!r} (known: {', '.join(target_names())})")
    target = TARGETS[name]
    host = host_target()
    if target.triple == host.triple and target.cpu == host.cpu:
        return replace(target, runs_here=True)
    return target
