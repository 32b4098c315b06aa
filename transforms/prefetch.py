"""Inserting memref.prefetch for the packed panels and the C block.

Prefetches past the end of a panel are harmless (a prefetch never faults on x86 or AArch64),
so the loop body needs no bounds check.
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref

from . import ir_query as q

CACHE_LINE_BYTES = 64


def _index(value: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), value)


def insert_prefetches(kernel: ir.Operation, k_loop: ir.Operation, distance: int, locality: int,
                      prefetch_c: bool) -> int:
    """Per loop iteration, one prefetch per cache line of the A and B rows consumed `distance`
    k-steps later; with `prefetch_c`, write prefetches covering every line of C's rows at function entry."""
    a, b, c = kernel.regions[0].blocks[0].arguments
    body = k_loop.regions[0].blocks[0]
    k = body.arguments[0]
    step = q.constant_int(k_loop.operands[2])
    count = 0
    first = body.operations[0]
    with ir.InsertionPoint(first), ir.Location.unknown():
        for panel in (a, b):
            row = panel.type.shape[1]
            per_line = CACHE_LINE_BYTES // _itemsize(panel.type.element_type)
            for offset in range(0, step * row, per_line):
                k_ahead = arith.addi(k, _index(distance + offset // row))
                memref.prefetch(panel, [k_ahead, _index(offset % row)], False, locality, True)
                count += 1
    if prefetch_c:
        entry = kernel.regions[0].blocks[0]
        with ir.InsertionPoint(entry.operations[0]), ir.Location.unknown():
            rows, cols = c.type.shape
            per_line = CACHE_LINE_BYTES // _itemsize(c.type.element_type)
            for i in range(rows):
                # C's rows need not start on a line boundary: the row's last element may be one line further.
                for j in sorted({*range(0, cols, per_line), cols - 1}):
                    memref.prefetch(c, [_index(i), _index(j)], True, 3, True)
                    count += 1
    return count


def _itemsize(element: ir.Type) -> int:
    return ir.FloatType(element).width // 8
