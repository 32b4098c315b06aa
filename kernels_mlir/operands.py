"""Operands in guarded buffers: what a kernel may write is its output's view, and nothing else.

Every operand sits inside a larger buffer: GUARD sentinel elements before and after it, and (for
a C block with ldc > nr) the rest of each row. After a call, the inputs' buffers must be
bit-identical and the output's buffer may differ only inside the output's view: a kernel that
writes into A, beside C or below it is wrong however right its C block is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Sentinel elements before and after every operand (a cache line or more of each dtype).
GUARD = 64
#: What the guards hold: finite and unlike anything a kernel computes from values in [-1, 1].
SENTINEL = -1.2345e30
#: Every operand starts on a cache line: where NumPy's allocator happens to put a small array would
#: otherwise decide whether a row's vectors split cache lines, a placement effect of 10% and more
#: on small problems that would drown effects of a few nanoseconds (and a runtime's arena aligns).
ALIGN = 64


def sentinel(dtype: np.dtype) -> float | int:
    """SENTINEL, or for integers a value near the top of their range."""
    return int(np.iinfo(dtype).max) - 3 if np.issubdtype(dtype, np.integer) else SENTINEL


@dataclass
class Guarded:
    """`view` (rows x cols of a rows x ld block) inside `buffer`, with GUARD sentinels on each side."""

    buffer: np.ndarray
    rows: int
    cols: int
    ld: int

    @classmethod
    def around(cls, values: np.ndarray, cols: int | None = None) -> "Guarded":
        """A guarded copy of `values` (rows x ld); the view is its first `cols` columns (default all)."""
        rows, ld = values.shape
        size, item = rows * ld + 2 * GUARD, values.dtype.itemsize
        raw = np.full(size + ALIGN // item, sentinel(values.dtype), dtype=values.dtype)
        skip = (-(raw.ctypes.data + GUARD * item) % ALIGN) // item  # the view's first element on a line
        buffer = raw[skip:skip + size]
        buffer[GUARD:GUARD + rows * ld] = values.ravel()
        return cls(buffer, rows, ld if cols is None else cols, ld)

    def _block(self, flat: np.ndarray) -> np.ndarray:
        return flat[GUARD:GUARD + self.rows * self.ld].reshape(self.rows, self.ld)

    @property
    def block(self) -> np.ndarray:
        """All rows with their full leading dimension (what the emulation driver exchanges)."""
        return self._block(self.buffer)

    @property
    def view(self) -> np.ndarray:
        return self._block(self.buffer)[:, :self.cols]

    def changed_outside_view(self, before: np.ndarray) -> str | None:
        """Where the buffer changed outside the view since `before` (bitwise), or None."""
        inside = np.zeros(self.buffer.shape, dtype=bool)
        self._block(inside)[:, :self.cols] = True
        changed = (self.buffer.view(np.uint8).reshape(len(self.buffer), -1) !=
                   before.view(np.uint8).reshape(len(before), -1)).any(axis=1) & ~inside
        if not changed.any():
            return None
        first = int(np.argmax(changed))
        if first < GUARD:
            return "before it"
        if first >= GUARD + self.rows * self.ld:
            return "after its last row"
        return f"beside it (row {(first - GUARD) // self.ld}, column {(first - GUARD) % self.ld} of ld {self.ld})"


@dataclass
class Operands:
    """A, B and C of one call, each guarded; C is updated in place."""

    guarded: dict[str, Guarded] = field(default_factory=dict)

    @property
    def a(self) -> np.ndarray:
        return self.guarded["A"].view

    @property
    def b(self) -> np.ndarray:
        return self.guarded["B"].view

    @property
    def c(self) -> np.ndarray:
        return self.guarded["C"].view

    @property
    def c_block(self) -> np.ndarray:
        """C's rows at their full leading dimension."""
        return self.guarded["C"].block

    def snapshot(self) -> dict[str, np.ndarray]:
        return {name: g.buffer.copy() for name, g in self.guarded.items()}

    def damage(self, before: dict[str, np.ndarray]) -> str | None:
        """What the call wrote that it must not have: into an input, or outside C's view."""
        for name, g in self.guarded.items():
            if name != "C" and not np.array_equal(g.buffer.view(np.uint8), before[name].view(np.uint8)):
                return f"wrote into its input {name}"
        where = self.guarded["C"].changed_outside_view(before["C"])
        return None if where is None else f"wrote outside the C block: {where}"
