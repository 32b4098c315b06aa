"""Library baselines a problem is timed against, sample by sample in the same alternation as ours.

A GEMM is compared with `numpy.matmul` (OpenBLAS, limited to the GEMM's thread count by
threadpoolctl) and with Debian's BLIS (`cblas_?gemm` through ctypes: the serial build for one
thread, the pthread build set to the thread count otherwise). Both are called from Python, so
their samples include one Python call per product (about 1-2 us, reported as the call overhead:
negligible from a few hundred thousand flops up). Each baseline names what ran: OpenBLAS's
kernel family (threadpoolctl) and BLIS's version and sub-configuration (`bli_arch_string`).
"""
from __future__ import annotations

import ctypes
import os
import glob
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_info


from runner.measure.timing import seconds_for

#: Debian's serial and threaded BLIS (libblis4-serial, libblis4-pthread; the Makefile installs them).
BLIS_BUILDS = {"serial": "/usr/lib/*/blis-serial/libblis.so.4", "pthread": "/usr/lib/*/blis-pthread/libblis.so.4"}
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
    #: Products one of run's n calls computes (a chain of nodes run in one session call).
    products: int = 1


def threads_word(threads: int) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}"


@lru_cache(maxsize=None)
def loop_overhead(library: str, dtype: str, threads: int) -> float:
    """Seconds per call of a Python loop around `library`'s product on 1x1 matrices of `dtype`.
    Measured once per process (a sweep's worker screens many GEMMs): it is the process's cost of a
    call, not the candidate's."""
    x, y, z = (np.ones((1, 1), dtype=dtype) for _ in range(3))
    call = (lambda: np.matmul(x, y, out=z)) if library == "OpenBLAS" else _blis_call(x, y, z, threads)

    def loop(n: int) -> None:
        for _ in range(n):
            call()
    return per_call_seconds(loop)


#: Calls timed for a Python loop's per-call cost.
OVERHEAD_CALLS = 20000


def per_call_seconds(run: Callable[[int], None]) -> float:
    """Seconds per call of `run(n)`, a Python loop around a trivial product (a baseline's call cost)."""
    return seconds_for(run, OVERHEAD_CALLS) / OVERHEAD_CALLS


def openblas_configuration() -> str:
    """OpenBLAS's version and the kernel family it runs, as OpenBLAS itself reports it (threadpoolctl).
    $OPENBLAS_CORETYPE is mentioned only as what it did: the family it forced when that is the family
    running, or not applied (a value OpenBLAS ignores, or set after it chose)."""
    found = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    if not found:
        return "unknown BLAS"
    running = str(found[0].get("architecture"))
    forced = os.environ.get("OPENBLAS_CORETYPE")
    note = "" if not forced else ", forced by OPENBLAS_CORETYPE" if forced.lower() == running.lower() else \
        f", OPENBLAS_CORETYPE={forced[:40]!r} not applied"
    return f"OpenBLAS {found[0].get('version')} ({running}{note})"


def numpy_matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray, threads: int = 1) -> Baseline:
    """numpy.matmul; its caller limits OpenBLAS to `threads` (threadpoolctl) around the timing."""
    out = np.empty_like(c)

    def run(n: int) -> None:
        for _ in range(n):
            np.matmul(a, b, out=out)
    return Baseline("OpenBLAS", f"numpy.matmul, {openblas_configuration()}, {threads_word(threads)}", run,
                    lambda: loop_overhead("OpenBLAS", a.dtype.name, threads))


@lru_cache(maxsize=None)
def blis_library(build: str = "serial") -> ctypes.CDLL:
    paths = sorted(glob.glob(BLIS_BUILDS[build]))
    if not paths:
        raise BaselineUnavailable(f"BLIS not found ({BLIS_BUILDS[build]}): install Debian's libblis4-{build} "
                                  "(`make test` does)")
    lib = ctypes.CDLL(paths[0])
    for name in ("cblas_sgemm", "cblas_dgemm"):
        getattr(lib, name).restype = None
    lib.bli_arch_string.restype = lib.bli_info_get_version_str.restype = ctypes.c_char_p
    return lib


def _blis_build(threads: int) -> ctypes.CDLL:
    """The serial build for one thread; the pthread build, set to `threads`, otherwise."""
    if threads == 1:
        return blis_library("serial")
    lib = blis_library("pthread")
    lib.bli_thread_set_num_threads(ctypes.c_long(threads))
    return lib


def blis_configuration(threads: int = 1) -> str:
    lib = _blis_build(threads)
    build = "serial" if threads == 1 else f"pthread, {threads_word(threads)}"
    return (f"BLIS {lib.bli_info_get_version_str().decode()} "
            f"({lib.bli_arch_string(lib.bli_arch_query_id()).decode()}, {build})")


def _blis_call(a: np.ndarray, b: np.ndarray, out: np.ndarray, threads: int = 1) -> Callable[[], None]:
    """out = a . b with BLIS's cblas_?gemm, row-major, on these arrays (C-contiguous)."""
    lib = _blis_build(threads)
    single = a.dtype == np.float32
    gemm, scalar = (lib.cblas_sgemm, ctypes.c_float) if single else (lib.cblas_dgemm, ctypes.c_double)
    (m, k), n = a.shape, b.shape[1]
    args = (_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, scalar(1.0), a.ctypes.data_as(ctypes.c_void_p), k,
            b.ctypes.data_as(ctypes.c_void_p), n, scalar(0.0), out.ctypes.data_as(ctypes.c_void_p), n)
    return lambda: gemm(*args)


def blis_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, threads: int = 1) -> Baseline:
    out = np.empty_like(c)
    call = _blis_call(a, b, out, threads)

    def run(n: int) -> None:
        for _ in range(n):
            call()
    return Baseline("BLIS", blis_configuration(threads), run, lambda: loop_overhead("BLIS", a.dtype.name, threads))
