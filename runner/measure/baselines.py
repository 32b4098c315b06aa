"""Library baselines a problem is timed against, sample by sample in the same alternation as ours.

A GEMM is compared with `numpy.matmul` (OpenBLAS, limited to one thread by threadpoolctl) and with
Debian's BLIS (the serial build, `cblas_?gemm` through ctypes). Both are called from Python, so
their samples include one Python call per product (about 1-2 us, reported as the call overhead:
negligible from a few hundred thousand flops up). Each baseline names what ran: OpenBLAS's
kernel family (threadpoolctl) and BLIS's version and sub-configuration (`bli_arch_string`).
"""
from __future__ import annotations

import ctypes
import glob
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_info

from kernels_mlir.operands import Operands
from kernels_mlir.problem import Problem

from runner.measure.timing import seconds_for

#: Debian's serial BLIS (libblis4-serial; the Makefile installs it).
BLIS_SERIAL = "/usr/lib/*/blis-serial/libblis.so.4"
#: CBLAS enum values (cblas.h).
_ROW_MAJOR, _NO_TRANS = 101, 111


class BaselineUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Baseline:
    name: str
    #: Which build and kernels ran, as the library reports them.
    configuration: str
    #: run(n): n products on the candidate's own operands.
    run: Callable[[int], None]
    #: Seconds per call a Python loop costs around it.
    call_overhead: Callable[[], float]


def baselines_for(problem: Problem, ops: Operands) -> list[Baseline]:
    """What `problem` is measured against: nothing for a micro-kernel; OpenBLAS and BLIS for a GEMM."""
    if problem.kind != "gemm":
        return []
    return [numpy_matmul(ops.a, ops.b, ops.c), blis_gemm(ops.a, ops.b, ops.c)]


def _loop_overhead(call: Callable[[], None]) -> Callable[[], float]:
    """Seconds per call of a Python loop around `call` on a 1x1x1 product."""
    def overhead() -> float:
        def loop(n: int) -> None:
            for _ in range(n):
                call()
        return seconds_for(loop, 20000) / 20000
    return overhead


def openblas_configuration() -> str:
    found = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return "unknown BLAS" if not found else f"OpenBLAS {found[0].get('version')} ({found[0].get('architecture')})"


def numpy_matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Baseline:
    out = np.empty_like(c)
    x, y, z = (np.ones((1, 1), dtype=a.dtype) for _ in range(3))

    def run(n: int) -> None:
        for _ in range(n):
            np.matmul(a, b, out=out)
    return Baseline("OpenBLAS", f"numpy.matmul, {openblas_configuration()}, 1 thread", run,
                    _loop_overhead(lambda: np.matmul(x, y, out=z)))


@lru_cache(maxsize=1)
def blis_library() -> ctypes.CDLL:
    paths = sorted(glob.glob(BLIS_SERIAL))
    if not paths:
        raise BaselineUnavailable(f"BLIS not found ({BLIS_SERIAL}): install Debian's libblis4-serial "
                                  "(`make test` does)")
    lib = ctypes.CDLL(paths[0])
    for name in ("cblas_sgemm", "cblas_dgemm"):
        getattr(lib, name).restype = None
    lib.bli_arch_string.restype = lib.bli_info_get_version_str.restype = ctypes.c_char_p
    return lib


def blis_configuration() -> str:
    lib = blis_library()
    return (f"BLIS {lib.bli_info_get_version_str().decode()} "
            f"({lib.bli_arch_string(lib.bli_arch_query_id()).decode()}, serial)")


def _blis_call(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> Callable[[], None]:
    """out = a . b with BLIS's cblas_?gemm, row-major, on these arrays (C-contiguous)."""
    lib = blis_library()
    single = a.dtype == np.float32
    gemm, scalar = (lib.cblas_sgemm, ctypes.c_float) if single else (lib.cblas_dgemm, ctypes.c_double)
    (m, k), n = a.shape, b.shape[1]
    args = (_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, scalar(1.0), a.ctypes.data_as(ctypes.c_void_p), k,
            b.ctypes.data_as(ctypes.c_void_p), n, scalar(0.0), out.ctypes.data_as(ctypes.c_void_p), n)
    return lambda: gemm(*args)


def blis_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Baseline:
    out = np.empty_like(c)
    call = _blis_call(a, b, out)
    x, y, z = (np.ones((1, 1), dtype=a.dtype) for _ in range(3))

    def run(n: int) -> None:
        for _ in range(n):
            call()
    return Baseline("BLIS", blis_configuration(), run, _loop_overhead(_blis_call(x, y, z)))
