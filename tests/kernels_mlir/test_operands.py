"""Guarded operands: each view starts on a cache line, whatever the dtype and NumPy's allocation."""
import numpy as np
import pytest

from kernels_mlir.operands import ALIGN, GUARD, Guarded


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (16, 16), (7, 129)])
def test_every_view_starts_on_a_cache_line_inside_its_guards(dtype, rows, cols):
    values = np.arange(rows * cols).astype(dtype).reshape(rows, cols)
    for _ in range(4):  # several allocations: NumPy's placement differs between them
        g = Guarded.around(values)
        assert g.view.ctypes.data % ALIGN == 0
        assert np.array_equal(g.view, values) and len(g.buffer) == rows * cols + 2 * GUARD
        assert np.all(g.buffer[:GUARD] == g.buffer[0]) and np.all(g.buffer[-GUARD:] == g.buffer[0])
