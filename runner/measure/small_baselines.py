"""Baselines of a small GEMM, each named with the library and the path it took.

- `numpy.matmul` (OpenBLAS through NumPy's dispatch), called from Python;
- `cblas` (the same OpenBLAS's `cblas_?gemm`, no NumPy dispatch), called from Python through ctypes;
- `cblas-native`: the same function called from a generated native loop, so the library's own
  per-call cost is not swamped by Python's (about a microsecond);
- ONNX Runtime's MatMul, in runner.measure.onnxruntime_matmul.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache

import llvmlite.binding as llvm_binding
import numpy as np
from mlir import ir
from threadpoolctl import threadpool_info

from kernels_mlir.small_gemm import CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, LIBRARY_BENCH, SmallGemmSpec, build_library_loop
from pipelines.codegen import generate
from pipelines.lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from pipelines.targets import get_target
from transforms.llvm_options import LLVMOptions

from runner.measure.baselines import (Baseline, BaselineUnavailable, loop_overhead, openblas_configuration,
                                      per_call_seconds, threads_word)
from runner.measure.native import NativeFunction


@lru_cache(maxsize=None)
def openblas_cblas() -> tuple[ctypes.CDLL, str, int]:
    """(NumPy's own OpenBLAS, its symbol prefix and suffix as one format, its integer width): the library
    numpy.matmul calls, so cblas and numpy.matmul differ by NumPy's dispatch alone."""
    found = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    if not found:
        raise BaselineUnavailable("NumPy's OpenBLAS was not found (threadpoolctl sees none)")
    lib = ctypes.CDLL(found[0]["filepath"])
    for form, bits in (("scipy_cblas_{}64_", 64), ("cblas_{}64_", 64), ("scipy_cblas_{}", 32), ("cblas_{}", 32)):
        if hasattr(lib, form.format("sgemm")):
            return lib, form, bits
    raise BaselineUnavailable(f"{found[0]['filepath']}: no cblas_sgemm symbol")


def _symbol(dtype: str) -> tuple[ctypes._CFuncPtr, str, int, type]:
    """(the function, its name, its integer width, its scalar type); calls pass ready-made ctypes
    values (no argtypes: converting each argument on every call would double a ctypes call's cost)."""
    lib, form, bits = openblas_cblas()
    name = form.format({"f32": "sgemm", "f64": "dgemm"}[dtype])
    fn = getattr(lib, name)
    fn.restype = None
    return fn, name, bits, ctypes.c_float if dtype == "f32" else ctypes.c_double


def _batches(spec: SmallGemmSpec, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """(A, B, C) of each cblas call: one for a flat batch (ONNX Runtime's flattening), one per entry otherwise."""
    if spec.layout == "flat":
        return [(a, b, out)]
    return [(a[i * spec.m:(i + 1) * spec.m], b[i * spec.k:(i + 1) * spec.k], out[i * spec.m:(i + 1) * spec.m])
            for i in range(spec.batch)]


def numpy_small(spec: SmallGemmSpec, a: np.ndarray, b: np.ndarray, threads: int = 1) -> Baseline:
    """numpy.matmul on the shapes a user passes: 2-D for a flat batch, 3-D stacks for a true batch."""
    out = np.empty((spec.rows, spec.n), dtype=a.dtype)
    x, y, z = (a, b, out) if spec.layout == "flat" else (
        a.reshape(spec.batch, spec.m, spec.k), b.reshape(spec.batch, spec.k, spec.n),
        out.reshape(spec.batch, spec.m, spec.n))

    def run(n: int) -> None:
        for _ in range(n):
            np.matmul(x, y, out=z)
    return Baseline("numpy", f"numpy.matmul, {openblas_configuration()}, {threads_word(threads)}", run,
                    lambda: loop_overhead("OpenBLAS", a.dtype.name, threads))


def cblas_python(spec: SmallGemmSpec, a: np.ndarray, b: np.ndarray) -> Baseline:
    fn, name, bits, scalar = _symbol(spec.dtype)
    integer = ctypes.c_int64 if bits == 64 else ctypes.c_int32
    enum, pointer = ctypes.c_int32, ctypes.c_void_p
    out = np.empty((spec.rows, spec.n), dtype=a.dtype)
    calls = [(enum(CBLAS_ROW_MAJOR), enum(CBLAS_NO_TRANS), enum(CBLAS_NO_TRANS), integer(x.shape[0]), integer(spec.n),
              integer(spec.k), scalar(1.0), pointer(x.ctypes.data), integer(spec.k), pointer(y.ctypes.data),
              integer(spec.n), scalar(0.0), pointer(z.ctypes.data), integer(spec.n))
             for x, y, z in _batches(spec, a, b, out)]

    def run(n: int, keep=out) -> None:  # the calls hold out's address only: `keep` keeps it alive
        for _ in range(n):
            for args in calls:
                fn(*args)
    return Baseline("cblas", f"{name} of {openblas_configuration()} through ctypes, 1 thread", run,
                    lambda: _cblas_overhead(spec.dtype))


@lru_cache(maxsize=None)
def _cblas_overhead(dtype: str) -> float:
    """Seconds per call of a Python loop around a 1x1x1 cblas call (measured once per process)."""
    one = np.ones((1, 1), dtype={"f32": np.float32, "f64": np.float64}[dtype])
    baseline = cblas_python(SmallGemmSpec(1, 1, 1, dtype=dtype), one, one)
    return per_call_seconds(baseline.run)


def cblas_native(spec: SmallGemmSpec, a: np.ndarray, b: np.ndarray) -> Baseline:
    """The library's cblas from a generated native loop (one per process and shape, on the host)."""
    fn, name, bits, _ = _symbol(spec.dtype)
    llvm_binding.add_symbol(name, ctypes.cast(fn, ctypes.c_void_p).value)
    code = _library_loop(spec, name, bits)
    out = np.empty((spec.rows, spec.n), dtype=a.dtype)
    loop = NativeFunction(code, LIBRARY_BENCH, [a, b, out], n_scalars=1)
    return Baseline("cblas-native", f"{name} of {openblas_configuration()} from a native loop, 1 thread", loop,
                    lambda: 0.0)


@lru_cache(maxsize=64)
def _library_loop(spec: SmallGemmSpec, name: str, bits: int):
    with ir.Context(), ir.Location.unknown():
        module = build_library_loop(spec, name, bits)
        lower_to_llvm_dialect(module)
        text = translate_to_llvm_ir(module)
    return generate(text, get_target("host"), LLVMOptions(), jit=True)
