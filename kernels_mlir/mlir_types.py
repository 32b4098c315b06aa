"""MLIR types used by more than one payload builder (must be called inside an active ir.Context)."""
from __future__ import annotations

from mlir import ir

from .spec import ELEMENTS, Element


def element_type(element: str | Element | ir.Type) -> ir.Type:
    """The MLIR type of an element (given by name, e.g. "f32", as an Element, or already a type)."""
    if isinstance(element, ir.Type):
        return element
    return ir.Type.parse((ELEMENTS[element] if isinstance(element, str) else element).mlir)


def c_block_type(mr: int, nr: int, dtype: str | Element | ir.Type) -> ir.MemRefType:
    """mr x nr block with a run-time row stride and offset: a view into a larger row-major C."""
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    layout = ir.StridedLayoutAttr.get(offset=dyn, strides=[dyn, 1])
    return ir.MemRefType.get([mr, nr], element_type(dtype), layout=layout)


def panel_type(kc: int, width: int, dtype: str | Element | ir.Type) -> ir.MemRefType:
    """A packed kc x width panel: contiguous rows, at a run-time offset into a larger packing buffer."""
    layout = ir.StridedLayoutAttr.get(offset=ir.ShapedType.get_dynamic_stride_or_offset(), strides=[width, 1])
    return ir.MemRefType.get([kc, width], element_type(dtype), layout=layout)


def mark_entry_point(fn, *, noinline: bool = False) -> None:
    """Give a function a C-ABI wrapper; `noinline` keeps a kernel a real call inside its bench loop."""
    fn.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get()
    if noinline:
        fn.attributes["passthrough"] = ir.ArrayAttr.get([ir.StringAttr.get("noinline")])
