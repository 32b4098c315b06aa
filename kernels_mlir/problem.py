"""What every problem kind (micro-kernel, GEMM, and any later one) offers the harness.

A problem is *what* is computed, apart from *how* (the strategy): its shapes, its operands (in
guarded buffers), the NumPy reference with an error bound, its flop count, the IR that computes
it, and an identity hash of its workload.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import numpy as np

from .operands import Operands


class Problem(Protocol):
    kind: str
    dtype: str
    #: The compiled function computing it once, and the bench loop calling it n times.
    entry: str
    bench: str

    @property
    def flops(self) -> int: ...

    @property
    def bytes_needed(self) -> int:
        """Memory one measurement of it takes, every buffer the harness allocates counted (operands with
        guards, snapshots, the reference's temporaries, buffers of its own): checked before allocating."""

    def workload(self) -> dict[str, Any]:
        """The problem as JSON: what is computed (shapes, dtype), nothing about how."""

    def operands(self, seed: int) -> Operands:
        """Fresh random operands in guarded buffers."""

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        """(C after a correct call in float64, the element-wise error bound), from ops before the call."""


def workload_key(kind: str, workload: dict[str, Any]) -> tuple[str, str]:
    """(hash, canonical JSON) of a problem of `kind` given by its workload: its identity in the store."""
    canonical = json.dumps({"kind": kind, **workload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16], canonical
