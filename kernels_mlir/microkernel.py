"""The GEMM micro-kernel payload: one linalg.generic on packed panels, built with op builders."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, linalg

from .mlir_types import c_block_type, mark_entry_point, panel_type
from .names import KERNEL
from .spec import KernelSpec


def build_microkernel(spec: KernelSpec) -> ir.Module:
    """C[i, j] += sum_k A[k, i] * B[k, j] over memrefs A: kc x mr, B: kc x nr, C: mr x nr (ldc >= nr).

    A and B are packed panels at any offset into a packing buffer (the full GEMM passes views).

    Iteration space (i, j, k): i and j parallel, k the reduction. Must be called inside
    `with ir.Context(), ir.Location.unknown()`.
    """
    a_type = panel_type(spec.kc, spec.mr, spec.dtype)
    b_type = panel_type(spec.kc, spec.nr, spec.dtype)
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
