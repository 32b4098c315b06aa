"""Calling JIT-compiled MLIR functions through their C interface (pointers to memref descriptors)."""
from __future__ import annotations

import ctypes
from typing import Sequence

import numpy as np
from mlir.runtime import get_ranked_memref_descriptor

from pipelines.codegen import MachineCode
from kernels_mlir.names import c_interface


class NativeFunction:
    """A `_mlir_ciface_*` function taking memrefs (as NumPy arrays) then index scalars.

    The descriptors are built once and kept with the arrays, so repeated calls cost only the
    ctypes call itself; timed loops nevertheless run inside native code (see kernels_mlir.harness).
    """

    def __init__(self, code: MachineCode, symbol: str, arrays: Sequence[np.ndarray], n_scalars: int = 0):
        # NumPy extension dtypes (ml_dtypes' bfloat16) have no ctypes equivalent: pass their bits.
        self._arrays = [a.view(f"u{a.dtype.itemsize}") if a.dtype.kind == "V" else a for a in arrays]
        self._descriptors = [get_ranked_memref_descriptor(a) for a in self._arrays]
        self._pointers = [ctypes.addressof(d) for d in self._descriptors]
        signature = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays) + [ctypes.c_int64] * n_scalars))
        self._fn = signature(code.address(c_interface(symbol)))
        self._code = code  # the engine owns the machine code

    def __call__(self, *scalars: int) -> None:
        self._fn(*self._pointers, *scalars)
