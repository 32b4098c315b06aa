"""Run an AArch64 micro-kernel under qemu-user: link its object with a small C driver, exchange operands by file.

This proves cross-compiled code computes the right answer; it says nothing about speed
(emulation timing is meaningless, which is what llvm-mca is for).
"""
from __future__ import annotations

import atexit
import shutil
import re
import subprocess
import sys
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from kernels_mlir.names import KERNEL
from kernels_mlir.operands import Operands
from kernels_mlir.spec import DTYPES, SCALABLE_BITS, KernelSpec
from pipelines.llvm_catalog import llvm_tool

GCC = "aarch64-linux-gnu-gcc"
#: The venv's qemu-aarch64 (`make test` puts one of version 9 or later there), else the system's.
_VENV_QEMU = Path(sys.executable).parent / "qemu-aarch64"
QEMU = str(_VENV_QEMU) if _VENV_QEMU.exists() else "qemu-aarch64"
#: The first QEMU whose SME outer products are right: 7.2 (Debian 12's) gets SMOPA's 4-way form wrong on
#: every other row (QEMU issue 2083; checked here: 7.2 wrong, 10.0 right).
SME_QEMU_MAJOR = 9
#: The emulated CPU: "max" has every extension qemu implements (dotprod, i8mm, bf16, SVE).
QEMU_CPU = "max"
#: Debian packages that provide GCC and QEMU; the Makefile installs them when missing.
PACKAGES = "qemu-user gcc-aarch64-linux-gnu"
DRIVER_SOURCE = Path(__file__).with_name("emulation_driver.c")
#: The driver of problems whose entry takes A, B, C and a share [lo, hi) (GEMMs, convolutions).
ENTRY_DRIVER_SOURCE = Path(__file__).with_name("entry_driver.c")
#: The SME ABI routine LLVM calls from functions that use ZA, which the cross libgcc lacks.
SME_ABI_SOURCE = Path(__file__).with_name("sme_abi.c")
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
def qemu_version() -> tuple[int, int]:
    require_tools()
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def require_scalable_qemu() -> None:
    """SVE and SME code is only verified under a QEMU that executes SME right (any of it may be SME)."""
    major, minor = qemu_version()
    if major < SME_QEMU_MAJOR:
        raise EmulationUnavailable(f"{QEMU} is QEMU {major}.{minor}, whose SME outer products are wrong (SMOPA, "
                                   f"QEMU issue 2083): SVE and SME code needs {SME_QEMU_MAJOR} or later (`make test` "
                                   "fetches one into the venv)")


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
def _driver_object(dtype: str, entry: str | None = None) -> Path:
    """The micro-kernel driver, or with `entry` the driver calling that C interface on shares."""
    require_tools()
    out = _workdir() / f"driver-{dtype}-{entry or 'ukernel'}.o"
    d = DTYPES[dtype]
    types = [f"-DELT_{name}={element.c_type}" for name, element in (("A", d.a), ("B", d.b), ("C", d.acc))]
    source, extra = (DRIVER_SOURCE, []) if entry is None else (ENTRY_DRIVER_SOURCE, [f"-DENTRY={entry}"])
    _run([GCC, "-O1", "-c", *types, *extra, str(source), "-o", str(out)], "compiling the driver")
    return out


@lru_cache(maxsize=1)
def _sme_abi_object() -> Path:
    require_tools()
    out = _workdir() / "sme_abi.o"
    _run([GCC, "-O1", "-c", str(SME_ABI_SOURCE), "-o", str(out)], "compiling the SME ABI routines")
    return out


def qemu_cpu(vector_bits: int | None = None) -> str:
    """qemu's -cpu value: "max", with SVE's vector length and SME's streaming one both set to
    `vector_bits` (qemu takes bytes) when given."""
    if vector_bits is None:
        return QEMU_CPU
    if vector_bits not in SCALABLE_BITS:
        raise ValueError(f"vector length: SVE and SME have {', '.join(map(str, SCALABLE_BITS))} bits, got {vector_bits}")
    require_scalable_qemu()
    size = vector_bits // 8
    return f"{QEMU_CPU},sve-default-vector-length={size},sme-default-vector-length={size}"


def run_emulated(object_code: bytes, spec: KernelSpec, ops: Operands, vector_bits: int | None = None) -> None:
    """Call the kernel in `object_code` once on `ops` under qemu; C's buffer is updated in place. `spec` is
    the fixed shape of the call (a scalable kernel's at_length), `vector_bits` the vector length to run at."""
    _emulate(object_code, _driver_object(spec.dtype), [ops.a, ops.b, ops.c_block],
             [spec.mr, spec.nr, spec.kc, spec.group, ops.c_block.shape[1]], [], ops.c_block, vector_bits)


def run_emulated_entry(object_code: bytes, entry: str, dtype: str, ops: Operands,
                       shares: list[tuple[int, int]], vector_bits: int | None = None) -> None:
    """Call `entry` (a C interface taking A, B, C and a share) once per share under qemu, in turn; C's
    buffer is updated in place."""
    arrays = [ops.a, ops.b, ops.c]
    _emulate(object_code, _driver_object(dtype, entry), arrays, [n for x in arrays for n in x.shape],
             [n for share in shares for n in share], ops.c, vector_bits)


def _emulate(object_code: bytes, driver: Path, arrays: list[np.ndarray], before: list[int], after: list[int],
             out: np.ndarray, vector_bits: int | None = None, trace: str | None = None) -> Counter | None:
    """Link `object_code` with `driver`, run it under qemu as `program BEFORE... IN OUT AFTER...` on the
    arrays written to IN, and read `out` back from OUT. With `trace` (a symbol), also count the
    instructions of that function the run executed (see executed_instructions)."""
    with tempfile.TemporaryDirectory(dir=_workdir()) as tmp:
        folder = Path(tmp)
        kernel, program = folder / "kernel.o", folder / "kernel"
        inputs, outputs = folder / "in.bin", folder / "out.bin"
        kernel.write_bytes(object_code)
        _run([GCC, "-static", str(driver), str(kernel), str(_sme_abi_object()), "-o", str(program), "-lm"],
             "linking the kernel")
        inputs.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in arrays))
        listing = None if trace is None else disassemble(program, trace)
        logging = [] if listing is None else [
            "-one-insn-per-tb", "-d", "exec,nochain", "-D", str(folder / "exec.log"),
            "-dfilter", f"{min(listing):#x}..{max(listing):#x}"]
        _run([QEMU, "-cpu", qemu_cpu(vector_bits), *logging, str(program), *map(str, before), str(inputs),
              str(outputs), *map(str, after)], "the kernel under qemu-aarch64", RUN_TIMEOUT_SECONDS)
        out[...] = np.fromfile(outputs, dtype=out.dtype).reshape(out.shape)
        if listing is None:
            return None
        executed = (int(m.group(1), 16) for m in _EXEC.finditer((folder / "exec.log").read_text()))
        return Counter(listing[address] for address in executed if address in listing)


#: One executed translation block in qemu's exec log (one instruction each, with -one-insn-per-tb).
_EXEC = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/", re.M)


def disassemble(program: Path, symbol: str) -> dict[int, str]:
    """Address -> instruction text (mnemonic and operands, tabs as spaces) of `symbol` in a linked program."""
    proc = subprocess.run([str(llvm_tool("llvm-objdump")), "-d", "--no-show-raw-insn", "--mattr=+sve,+sme",
                           f"--disassemble-symbols={symbol}", str(program)], capture_output=True, text=True)
    listing = {int(m.group(1), 16): " ".join(m.group(2).split())
               for m in re.finditer(r"^\s*([0-9a-f]+):\s+(.+?)\s*$", proc.stdout, re.M)}
    if proc.returncode != 0 or not listing:
        raise EmulatedFailure(f"cannot disassemble {symbol}: {proc.stderr.strip()[:200]}")
    return listing


def executed_instructions(object_code: bytes, spec: KernelSpec, ops: Operands, vector_bits: int | None = None,
                          symbol: str = KERNEL) -> Counter:
    """What one call of the micro-kernel executes under qemu, instruction by instruction (text -> times):
    an exact count, the emulator's, where timing means nothing."""
    counts = _emulate(object_code, _driver_object(spec.dtype), [ops.a, ops.b, ops.c_block],
                      [spec.mr, spec.nr, spec.kc, spec.group, ops.c_block.shape[1]], [], ops.c_block, vector_bits,
                      trace=symbol)
    return counts
