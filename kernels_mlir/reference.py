"""The NumPy reference of every problem (C0 + A^T B in float64) and its error bound: the single
source of verification tolerances."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .spec import Element

#: Slack on the rigorous summation bound |fl(s) - s| <= k * u * sum|a*b| (u = eps/2).
TOLERANCE_SLACK = 4.0
#: Extra columns of C beyond nr, so every micro-kernel test exercises a leading dimension ldc > nr.
LDC_PADDING = 3


def uniform(rng: np.random.Generator, dtype: type, *shape: int) -> np.ndarray:
    """Operand values in [-1, 1]: products and sums stay far from overflow and denormals."""
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


#: Magnitude of integer accumulators' initial values: with |a| <= 255 and |b| <= 128, any kc up to
#: MAX_KC (65536) keeps C + A^T B inside int32, so an exact comparison is meaningful.
INT_C_MAGNITUDE = 1 << 20


def draw(rng: np.random.Generator, element: "Element", *shape: int) -> np.ndarray:
    """Random operand values: floats uniform in [-1, 1] (rounded to the element, e.g. bf16);
    8-bit integers over their whole range; 32-bit integer accumulators within INT_C_MAGNITUDE."""
    if not element.exact:
        return uniform(rng, element.numpy, *shape)
    info = np.iinfo(element.numpy)
    low, high = (info.min, info.max) if element.bits == 8 else (-INT_C_MAGNITUDE, INT_C_MAGNITUDE)
    return rng.integers(low, high, size=shape, endpoint=True).astype(element.numpy)


def pack_k_groups(panel: np.ndarray, group: int) -> np.ndarray:
    """A k x w panel stored as (k/group) x (w*group): each row of the result holds, for one group of
    `group` consecutive k, every column's `group` values side by side (the VNNI / MMLA layout)."""
    if group == 1:
        return panel
    k, w = panel.shape
    return np.ascontiguousarray(panel.reshape(k // group, group, w).transpose(0, 2, 1).reshape(k // group, w * group))


def unpack_k_groups(packed: np.ndarray, group: int) -> np.ndarray:
    """Inverse of pack_k_groups: the logical k x w panel."""
    if group == 1:
        return packed
    rows, width = packed.shape
    w = width // group
    return packed.reshape(rows, w, group).transpose(0, 2, 1).reshape(rows * group, w)


def reference(a: np.ndarray, b: np.ndarray, c: np.ndarray, exact: bool = False) -> np.ndarray:
    """C + A^T B (A is k x m) in float64, or in int64 for integers (which cannot wrap, unlike the kernel)."""
    wide = np.int64 if exact else np.float64
    return c.astype(wide) + a.T.astype(wide) @ b.astype(wide)


def error_bound(a: np.ndarray, b: np.ndarray, c: np.ndarray, acc: "Element | None" = None) -> np.ndarray:
    """Element-wise bound on the rounding error of any summation order, FMA or not, in the
    accumulator's precision (products of bf16 values are exact in f32); zero for integers."""
    if acc is not None and acc.exact:
        return np.zeros(c.shape)
    k = a.shape[0]
    eps = float(np.finfo(acc.numpy if acc is not None else a.dtype).eps)
    magnitude = np.abs(c).astype(np.float64) + np.abs(a.T).astype(np.float64) @ np.abs(b).astype(np.float64)
    return TOLERANCE_SLACK * (k + 1) * eps * magnitude


def verification_bytes(inputs: int, outputs: int) -> int:
    """Bytes the float64 (or int64) check of a call takes beyond its operands, for `inputs` input and
    `outputs` output elements: the reference's widened copies, product and sum; the error bound's
    absolute values, product and scaled sum; the comparison's error and ratio arrays (judge), all
    8-byte elements, some alive at once: counted whole, so the check never takes more than is counted."""
    return 8 * (2 * inputs + 7 * outputs)
