"""Run a compiled micro-kernel once on random operands and compare with NumPy."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels_mlir.names import KERNEL
from kernels_mlir.reference import error_bound, make_operands, reference
from kernels_mlir.spec import KernelSpec
from pipelines.codegen import MachineCode

from .native import NativeFunction


@dataclass(frozen=True)
class Verification:
    correct: bool
    max_abs_error: float
    #: Largest error as a fraction of its element's bound (> 1 means wrong).
    worst_ratio: float
    message: str = ""


def verify(code: MachineCode, spec: KernelSpec, seed: int = 0) -> Verification:
    ops = make_operands(spec, seed)
    expected = reference(ops.a, ops.b, ops.c)
    bound = error_bound(ops.a, ops.b, ops.c)
    untouched = ops.c_buffer[:, spec.nr:].copy()
    NativeFunction(code, KERNEL, [ops.a, ops.b, ops.c])()
    error = np.abs(ops.c.astype(np.float64) - expected)
    ratio = error / bound
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).all() else float("inf")
    max_err = float(np.max(error))
    if not np.array_equal(untouched, ops.c_buffer[:, spec.nr:]):
        return Verification(False, max_err, worst, "wrote outside the C block (beyond nr columns)")
    if not worst <= 1.0:
        i, j = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(ratio), ratio, np.inf))), ratio.shape)
        return Verification(False, max_err, worst,
                            f"C[{i},{j}] = {ops.c[i, j]!r}, expected {expected[i, j]!r} "
                            f"(error {error[i, j]:.3g} > bound {bound[i, j]:.3g})")
    return Verification(True, max_err, worst)
