"""Index arithmetic and views for loop-nest builders (the convolution routes)."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref, scf


class Emitter:
    """Index arithmetic helpers; every method assumes an active insertion point and location."""

    def __init__(self) -> None:
        self.index = ir.IndexType.get()

    def c(self, value: int) -> ir.Value:
        return arith.constant(self.index, value)

    def loop(self, lower, upper, step: int = 1) -> scf.ForOp:
        lower = self.c(lower) if isinstance(lower, int) else lower
        upper = self.c(upper) if isinstance(upper, int) else upper
        return scf.ForOp(lower, upper, self.c(step))

    def add(self, *values) -> ir.Value:
        total = values[0]
        for v in values[1:]:
            total = arith.addi(total, v)
        return total

    def mul(self, a: ir.Value, b: int) -> ir.Value:
        return arith.muli(a, self.c(b))

    def inside(self, value: ir.Value, size: int) -> ir.Value:
        """0 <= value < size (value may be negative: index arithmetic is signed here)."""
        return arith.andi(arith.cmpi(arith.CmpIPredicate.sge, value, self.c(0)),
                          arith.cmpi(arith.CmpIPredicate.slt, value, self.c(size)))

    def view(self, source: ir.Value, offsets: list, sizes: list[int], ld: int) -> ir.Value:
        """sizes[0] x sizes[1] of row-major `source` at `offsets` (index values or ints), typed as a GEMM
        operand with leading dimension `ld` at a run-time offset."""
        dyn = ir.ShapedType.get_dynamic_stride_or_offset()
        elt = ir.MemRefType(source.type).element_type
        typ = ir.MemRefType.get(sizes, elt, layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[ld, 1]))
        view = memref.subview(source, offsets, sizes, [1, 1])
        return view if view.type == typ else memref.cast(typ, view)
