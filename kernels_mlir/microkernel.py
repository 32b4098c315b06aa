"""The GEMM micro-kernel payload: one linalg.generic on packed panels, built with op builders."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, linalg, memref, vector

from .mlir_types import c_block_type, mark_entry_point, panel_type
from .names import KERNEL
from .spec import DTYPES, DType, Element, KernelSpec


def build_microkernel(spec: KernelSpec) -> ir.Module:
    """C[i, j] += sum_k A[k, i] * B[k, j] over memrefs A: kc x mr, B: kc x nr, C: mr x nr (ldc >= nr).

    A and B are packed panels at any offset into a packing buffer (the full GEMM passes views).
    Low-precision dtypes take their panels with k in groups (see build_grouped_body).

    Must be called inside `with ir.Context(), ir.Location.unknown()`.
    """
    d = DTYPES[spec.dtype]
    g = spec.group
    dyn = ir.ShapedType.get_dynamic_size()
    rows = dyn if spec.scalable == "sme" else spec.mr
    cols = dyn if spec.scalable else spec.nr
    a_type = panel_type(spec.kc // g, rows if rows == dyn else rows * g, d.a)
    b_type = panel_type(spec.kc // g, cols if cols == dyn else cols * g, d.b)
    c_type = c_block_type(rows, cols, d.acc)
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(KERNEL, ir.FunctionType.get([a_type, b_type, c_type], []))
        mark_entry_point(fn, noinline=True)
        entry = fn.add_entry_block()
        with ir.InsertionPoint(entry):
            a, b, c = entry.arguments
            if spec.scalable:
                a, b, c = _scalable_views(spec, a, b, c)
            if g == 1:
                _plain_body(d, a, b, c)
            else:
                _grouped_body(spec, a, b, c)
            func.ReturnOp([])
    return module


def _scalable_views(spec: KernelSpec, a: ir.Value, b: ir.Value, c: ir.Value) -> tuple[ir.Value, ...]:
    """The operands cut to the tile one call computes, [mr] or mr rows by [nr] columns, sized from
    vector.vscale rather than from the descriptors: the vectorizer's masks then fold to all-true (a
    masked contraction hides C's read/write pair from hoisting) and the tile is exactly the registers'."""
    vscale = vector.vscale()

    def scaled(lanes: int) -> ir.Value:
        return arith.muli(vscale, arith.constant(ir.IndexType.get(), lanes))

    rows = scaled(spec.mr) if spec.scalable == "sme" else spec.mr
    cols = scaled(spec.nr)
    return (_leading(a, [spec.kc, rows]), _leading(b, [spec.kc, cols]), _leading(c, [rows, cols]))


def _leading(view: ir.Value, sizes: list) -> ir.Value:
    """view[0:sizes[0], 0:sizes[1]], sizes static (int) or run-time (index value)."""
    source = ir.MemRefType(view.type)
    dyn = ir.ShapedType.get_dynamic_size()
    static = [n if isinstance(n, int) else dyn for n in sizes]
    strides, _ = source.get_strides_and_offset()
    layout = ir.StridedLayoutAttr.get(offset=ir.ShapedType.get_dynamic_stride_or_offset(), strides=strides)
    result = ir.MemRefType.get(static, source.element_type, layout=layout)
    return memref.subview(view, [0, 0], sizes, [1, 1], result_type=result)


def _plain_body(d: DType, a: ir.Value, b: ir.Value, c: ir.Value) -> None:
    """Iteration space (i, j, k): i and j parallel, k the reduction. Inputs narrower than C (a scalable
    SME kernel's bf16 or s8 panels, k-major) are widened first, as the outer-product fusion expects."""
    i, j, k = (ir.AffineDimExpr.get(d) for d in range(3))
    maps = [ir.AffineMap.get(3, 0, dims) for dims in ([k, i], [k, j], [i, j])]
    iterators = [linalg.IteratorType.parallel, linalg.IteratorType.parallel, linalg.IteratorType.reduction]
    generic = linalg.GenericOp_([a, b], [c], maps, iterators)
    _multiply_add(generic, d)


def _multiply_add(generic: linalg.GenericOp, d: DType) -> None:
    """The body c + a * b, inputs widened to the accumulator type first so the body states the exact
    semantics (u8 widens unsigned, s8 signed, bf16 exactly to f32)."""
    acc_type = ir.Type.parse(d.acc.mlir)
    body = generic.regions[0].blocks[0]
    with ir.InsertionPoint(body):
        a_elt, b_elt, c_elt = body.arguments
        x = a_elt if d.a == d.acc else _widen(a_elt, d.a, acc_type)
        y = b_elt if d.b == d.acc else _widen(b_elt, d.b, acc_type)
        if d.acc.exact:
            linalg.YieldOp([arith.addi(c_elt, arith.muli(x, y))])
        else:
            linalg.YieldOp([arith.addf(c_elt, arith.mulf(x, y))])


def _grouped_body(spec: KernelSpec, a: ir.Value, b: ir.Value, c: ir.Value) -> None:
    """Iteration space (i, j, ko, v), k = ko * g + v: the panels' rows are k groups, each holding
    every column's g values side by side (as vdpbf16ps, vpdpbusd and smmla read them).

    A is viewed as mr x (kc/g) x g (m before k: the x86 dot-product patterns match that order),
    B as (kc/g) x nr x g.
    """
    d = DTYPES[spec.dtype]
    g = spec.group
    groups = spec.kc // g
    a_view = _grouped_view(a, [spec.mr, groups, g], [g, spec.mr * g, 1])
    b_view = _grouped_view(b, [groups, spec.nr, g], [spec.nr * g, g, 1])
    i, j, ko, v = (ir.AffineDimExpr.get(x) for x in range(4))
    maps = [ir.AffineMap.get(4, 0, dims) for dims in ([i, ko, v], [ko, j, v], [i, j])]
    par, red = linalg.IteratorType.parallel, linalg.IteratorType.reduction
    generic = linalg.GenericOp_([a_view, b_view], [c], maps, [par, par, red, red])
    _multiply_add(generic, d)


def _widen(value: ir.Value, element: Element, to: ir.Type) -> ir.Value:
    if not element.exact:
        return arith.extf(to, value)
    return arith.extsi(to, value) if element.signed else arith.extui(to, value)


def _grouped_view(panel: ir.Value, shape: list[int], strides: list[int]) -> ir.Value:
    """The same memory as a 3-D strided view at the panel's run-time offset. (A reinterpret_cast
    rather than expand_shape + transpose: memref alias folding loops forever on that chain.)"""
    source = ir.MemRefType(panel.type)
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    layout = ir.StridedLayoutAttr.get(offset=dyn, strides=strides)
    result = ir.MemRefType.get(shape, source.element_type, layout=layout)
    metadata = memref.ExtractStridedMetadataOp(panel)
    return memref.reinterpret_cast(result, metadata.base_buffer, [metadata.offset], [], [], [dyn], shape, strides)
