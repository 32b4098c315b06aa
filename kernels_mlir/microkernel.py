"""The GEMM micro-kernel payload: one linalg.generic on packed panels, built with op builders."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, linalg

from .mlir_types import c_block_type, element_type, mark_entry_point
from .names import KERNEL
from .spec import KernelSpec


def build_microkernel(spec: KernelSpec) -> ir.Module:
    """C[i, j] += sum_k A[k, i] * B[k, j] over memrefs A: kc x mr, B: kc x nr, C: mr x nr (ldc >= nr).

    Iteration space (i, j, k): i and j parallel, k the reduction. Must be called inside
    `with ir.Context(), ir.Location.unknown()`.
    """
    elt = element_type(spec.dtype)
    a_type = ir.MemRefType.get([spec.kc, spec.mr], elt)
    b_type = ir.MemRefType.get([spec.kc, spec.nr], elt)
    c_type = c_block_type(spec.mr, spec.nr, spec.dtype)
    i, j, k = (ir.AffineDimExpr.get(d) for d in range(3))
    maps = [ir.AffineMap.get(3, 0, dims) for dims in ([k, i], [k, j], [i, j])]
    iterators = [linalg.IteratorType.parallel, linalg.IteratorType.parallel, linalg.IteratorType.reduction]

    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(KERNEL, ir.FunctionType.get([a_type, b_type, c_type], []))
        mark_entry_point(fn, noinline=True)
        entry = fn.add_entry_block()
        with ir.InsertionPoint(entry):
            a, b, c = entry.arguments
            generic = linalg.GenericOp_([a, b], [c], maps, iterators)
            body = generic.regions[0].blocks[0]
            with ir.InsertionPoint(body):
                a_elt, b_elt, c_elt = body.arguments
                linalg.YieldOp([arith.addf(c_elt, arith.mulf(a_elt, b_elt))])
            func.ReturnOp([])
    return module
