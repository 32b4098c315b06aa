"""NumPy reference and operands for the micro-kernel; the single source of verification tolerances."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import KernelSpec

#: Slack on the rigorous summation bound |fl(s) - s| <= k * u * sum|a*b| (u = eps/2).
TOLERANCE_SLACK = 4.0
#: Extra columns of C beyond nr, so every test exercises a leading dimension ldc > nr.
LDC_PADDING = 3


@dataclass
class Operands:
    """Packed panels and a C view into a wider row-major buffer (ldc = nr + LDC_PADDING)."""

    a: np.ndarray  # kc x mr
    b: np.ndarray  # kc x nr
    c_buffer: np.ndarray  # mr x ldc

    @property
    def c(self) -> np.ndarray:
        return self.c_buffer[:, : self.b.shape[1]]


def make_operands(spec: KernelSpec, seed: int = 0) -> Operands:
    rng = np.random.default_rng(seed)
    dt = spec.np_dtype

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=shape).astype(dt)

    return Operands(uniform(spec.kc, spec.mr), uniform(spec.kc, spec.nr),
                    uniform(spec.mr, spec.nr + LDC_PADDING))


def reference(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """C + A^T B in float64."""
    return c.astype(np.float64) + a.T.astype(np.float64) @ b.astype(np.float64)


def error_bound(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Element-wise bound on the rounding error of any summation order, FMA or not."""
    k = a.shape[0]
    eps = float(np.finfo(a.dtype).eps)
    magnitude = np.abs(c).astype(np.float64) + np.abs(a.T).astype(np.float64) @ np.abs(b).astype(np.float64)
    return TOLERANCE_SLACK * (k + 1) * eps * magnitude
