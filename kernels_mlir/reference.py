"""The NumPy reference of every problem (C0 + A^T B in float64) and its error bound: the single
source of verification tolerances."""
from __future__ import annotations

import numpy as np

#: Slack on the rigorous summation bound |fl(s) - s| <= k * u * sum|a*b| (u = eps/2).
TOLERANCE_SLACK = 4.0
#: Extra columns of C beyond nr, so every micro-kernel test exercises a leading dimension ldc > nr.
LDC_PADDING = 3


def uniform(rng: np.random.Generator, dtype: type, *shape: int) -> np.ndarray:
    """Operand values in [-1, 1]: products and sums stay far from overflow and denormals."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def reference(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """C + A^T B in float64 (A is k x m)."""
    return c.astype(np.float64) + a.T.astype(np.float64) @ b.astype(np.float64)


def error_bound(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Element-wise bound on the rounding error of any summation order, FMA or not."""
    k = a.shape[0]
    eps = float(np.finfo(a.dtype).eps)
    magnitude = np.abs(c).astype(np.float64) + np.abs(a.T).astype(np.float64) @ np.abs(b).astype(np.float64)
    return TOLERANCE_SLACK * (k + 1) * eps * magnitude
