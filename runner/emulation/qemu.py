"""Run an AArch64 micro-kernel under qemu-user: link its object with a small C driver, exchange operands by file.

This proves cross-compiled code computes the right answer; it says nothing about speed
(emulation timing is meaningless, which is what llvm-mca is for).
"""
from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from kernels_mlir.operands import Operands
from kernels_mlir.spec import DTYPES, KernelSpec

GCC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
#: The emulated CPU: "max" has every extension qemu implements (dotprod, i8mm, bf16, SVE).
QEMU_CPU = "max"
#: Debian packages that provide GCC and QEMU; the Makefile installs them when missing.
PACKAGES = "qemu-user gcc-aarch64-linux-gnu"
DRIVER_SOURCE = Path(__file__).with_name("emulation_driver.c")
#: One emulated call takes milliseconds; a kernel that loops forever must not hang the harness.
RUN_TIMEOUT_SECONDS = 60


class EmulationUnavailable(RuntimeError):
    pass


class EmulatedFailure(RuntimeError):
    """The kernel crashed, hung or could not be linked under emulation."""


def missing_tools() -> list[str]:
    return [tool for tool in (GCC, QEMU) if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise EmulationUnavailable(f"{', '.join(missing)} not found: install Debian's {PACKAGES} (`make test` does)")


@lru_cache(maxsize=1)
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ukl-aarch64-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _run(command: list[str], what: str, timeout: float | None = None) -> None:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EmulatedFailure(f"{what} timed out after {timeout} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        signal = f" (signal {-proc.returncode})" if proc.returncode < 0 else ""
        raise EmulatedFailure(f"{what} failed with status {proc.returncode}{signal}: {detail}".rstrip(": "))


@lru_cache(maxsize=None)
def _driver_object(dtype: str) -> Path:
    require_tools()
    out = _workdir() / f"driver-{dtype}.o"
    d = DTYPES[dtype]
    types = [f"-DELT_{name}={element.c_type}" for name, element in (("A", d.a), ("B", d.b), ("C", d.acc))]
    _run([GCC, "-O1", "-c", *types, str(DRIVER_SOURCE), "-o", str(out)], "compiling the driver")
    return out


def run_emulated(object_code: bytes, spec: KernelSpec, ops: Operands) -> None:
    """Call the kernel in `object_code` once on `ops` under qemu; C's buffer is updated in place."""
    driver = _driver_object(spec.dtype)
    with tempfile.TemporaryDirectory(dir=_workdir()) as tmp:
        folder = Path(tmp)
        kernel, program = folder / "kernel.o", folder / "kernel"
        inputs, outputs = folder / "in.bin", folder / "out.bin"
        kernel.write_bytes(object_code)
        _run([GCC, "-static", str(driver), str(kernel), "-o", str(program)], "linking the kernel")
        inputs.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in (ops.a, ops.b, ops.c_block)))
        ldc = ops.c_block.shape[1]
        sizes = (spec.mr, spec.nr, spec.kc, spec.group, ldc)
        _run([QEMU, "-cpu", QEMU_CPU, str(program), *map(str, sizes), str(inputs), str(outputs)],
             "the kernel under qemu-aarch64", RUN_TIMEOUT_SECONDS)
        ops.c_block[...] = np.fromfile(outputs, dtype=ops.c_block.dtype).reshape(ops.c_block.shape)
