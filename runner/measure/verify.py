"""Run a compiled problem once on guarded random operands and compare with NumPy.

Correct means: C within the error bound of the float64 reference, A and B bit-identical
afterwards, and nothing written outside C's block (guards before and after every operand, and
the rest of C's rows within its leading dimension).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kernels_mlir.names import c_interface
from kernels_mlir.operands import Operands
from kernels_mlir.problem import Problem
from pipelines.codegen import MachineCode
from pipelines.targets import Target

from runner.emulation.qemu import run_emulated, run_emulated_entry
from runner.kinds import kind_of, launch


@dataclass(frozen=True)
class Verification:
    correct: bool
    max_abs_error: float
    #: Largest error as a fraction of its element's bound (> 1 means wrong).
    worst_ratio: float
    message: str = ""


def verify(code: MachineCode, problem: Problem, seed: int = 0) -> Verification:
    """Verify JIT-compiled code in this process."""
    return check_call(lambda ops: launch(code, problem, ops)(), problem, seed)


def verify_emulated(code: MachineCode, problem: Problem, seed: int = 0, vector_bits: int | None = None
                    ) -> Verification:
    """Verify AArch64 object code under qemu-aarch64 (raises EmulatedFailure if it crashes or hangs), with
    SVE and SME vectors `vector_bits` long when given: the problem is checked as that length computes it."""
    if code.object_code is None:
        raise ValueError("no object code to run: compile without JIT")
    kind = kind_of(problem)
    shares = kind.shares(problem)
    fixed = kind.at_length(problem, vector_bits)
    if shares is None:
        return check_call(lambda ops: run_emulated(code.object_code, fixed, ops, vector_bits), fixed, seed)
    return check_call(lambda ops: run_emulated_entry(code.object_code, c_interface(problem.entry), problem.dtype, ops,
                                                     shares, vector_bits), fixed, seed)


def check_call(call: Callable[[Operands], None], problem: Problem, seed: int = 0) -> Verification:
    """Run `call` (one call updating ops.c in place) on fresh operands; compare with NumPy and the guards."""
    ops = problem.operands(seed)
    expected, bound = problem.expected(ops)
    before = ops.snapshot()
    call(ops)
    damage = ops.damage(before)
    if damage is not None:
        error = np.abs(ops.c.astype(np.float64) - expected)
        return Verification(False, float(np.nanmax(error)), float("inf"), damage)
    return judge(ops.c, expected, bound)


def judge(actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> Verification:
    """Element-wise |actual - expected| <= bound, with the worst offender named when it fails. A zero
    bound (integers) demands exact equality; integer errors are computed in int64, so a kernel whose
    int32 accumulators wrapped differs from the reference by about 2^32."""
    error = np.abs(actual.astype(expected.dtype) - expected).astype(np.float64)
    ratio = np.divide(error, bound, out=np.where(error == 0, 0.0, np.inf), where=bound > 0)
    worst = float(np.nanmax(ratio)) if np.isfinite(ratio).all() else float("inf")
    max_err = float(np.max(error))
    if not worst <= 1.0:
        i, j = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(ratio), ratio, np.inf))), ratio.shape)
        return Verification(False, max_err, worst,
                            f"C[{i},{j}] = {actual[i, j]!r}, expected {expected[i, j]!r} "
                            f"(error {error[i, j]:.3g} > bound {bound[i, j]:.3g})")
    return Verification(True, max_err, worst)


def verify_anywhere(code: MachineCode, problem: Problem, target: Target) -> tuple[Verification | None, str]:
    """(verification, how): natively when JIT-compiled, under qemu for AArch64 (at each vector length its
    kind says, in turn: the first failure is the verdict), else (None, why not)."""
    if code.engine is not None:
        return verify(code, problem), "native"
    kind = kind_of(problem)
    if target.is_aarch64 and kind.emulated:
        lengths = kind.vector_lengths(problem, target)
        for bits in lengths:
            check = verify_emulated(code, problem, vector_bits=bits)
            if not check.correct:
                break
        how = "/".join(str(bits) for bits in lengths if bits is not None)
        return check, "qemu-aarch64" + (f" at {how if check.correct else bits}-bit vectors" if how else "")
    if target.is_aarch64:
        return None, f"not run: {problem.kind} code has no emulation driver (it is verified natively only)"
    return None, "not run: this host cannot execute code for that target"
