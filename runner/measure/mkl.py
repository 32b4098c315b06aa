"""Intel's MKL (the `mkl` wheel: libmkl_rt) as a GEMM baseline: cblas_?gemm through ctypes, its thread
count set like the others', named with its version and the code path it dispatched to (MKL's own
`mkl_get_version` Processor field: on an AMD core it names the generic Intel Architecture path,
on an Intel core the AVX2 or AVX-512 one)."""
from __future__ import annotations

import ctypes
import glob
import sys
from functools import lru_cache
from typing import Callable

import numpy as np

from runner.measure.baselines import Baseline, BaselineUnavailable, per_call_seconds, threads_word

_ROW_MAJOR, _NO_TRANS = 101, 111


class _Version(ctypes.Structure):
    """MKLVersion (mkl_types.h)."""
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("update", ctypes.c_int), ("patch", ctypes.c_int),
                ("status", ctypes.c_char_p), ("build", ctypes.c_char_p), ("processor", ctypes.c_char_p),
                ("platform", ctypes.c_char_p)]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """libmkl_rt from the environment's lib folder (where the wheel puts it)."""
    paths = sorted({*glob.glob(f"{sys.prefix}/lib/libmkl_rt.so*"), *glob.glob(f"{sys.base_prefix}/lib/libmkl_rt.so*")})
    if not paths:
        raise BaselineUnavailable(f"MKL not found ({sys.prefix}/lib/libmkl_rt.so*): `pip install mkl` (x86-64 only; "
                                  "`make test` installs it there)")
    try:
        lib = ctypes.CDLL(paths[0])
    except OSError as exc:
        raise BaselineUnavailable(f"MKL does not load: {' '.join(str(exc).split())[:200]}") from None
    for name in ("cblas_sgemm", "cblas_dgemm"):
        getattr(lib, name).restype = None
    return lib


def configuration(threads: int = 1) -> str:
    lib = library()
    v = _Version()
    lib.mkl_get_version(ctypes.byref(v))
    return (f"MKL {v.major} Update {v.update} ({v.processor.decode()} code path, {threads_word(threads)})")


def set_threads(threads: int) -> None:
    library().MKL_Set_Num_Threads(ctypes.c_int(threads))


def product(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> Callable[[], None]:
    """A call computing out = a . b with MKL on these (C-contiguous) arrays."""
    lib = library()
    single = a.dtype == np.float32
    gemm, scalar = (lib.cblas_sgemm, ctypes.c_float) if single else (lib.cblas_dgemm, ctypes.c_double)
    (m, k), n = a.shape, b.shape[1]
    p = ctypes.c_void_p
    args = (_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, scalar(1.0), p(a.ctypes.data), k, p(b.ctypes.data), n,
            scalar(0.0), p(out.ctypes.data), n)
    return lambda: gemm(*args)


def mkl_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, threads: int = 1) -> Baseline:
    """out = a . b by MKL at `threads` threads, on these (C-contiguous) arrays."""
    out = np.empty_like(c)
    call = product(a, b, out)
    set_threads(threads)

    def run(n: int, keep=out) -> None:  # the call holds out's address only: `keep` keeps it alive
        set_threads(threads)
        for _ in range(n):
            call()
    return Baseline("MKL", configuration(threads), run, lambda: _overhead(a.dtype.name, threads))


@lru_cache(maxsize=None)
def _overhead(dtype: str, threads: int) -> float:
    """Seconds per call of a Python loop around a 1x1x1 MKL product (measured once per process)."""
    one = np.ones((1, 1), dtype=dtype)
    base = mkl_gemm(one, one, one, threads)
    return per_call_seconds(base.run)
