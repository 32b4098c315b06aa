"""IR rewrites written in Python where upstream MLIR has no transform or pattern for the job."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref

from . import ir_query as q


def scalarize_extracted_loads(kernel: ir.Operation) -> int:
    """vector.load whose every use is a static scalar vector.extract -> one memref.load per extract.

    Upstream's sink_mem_ops does this only for single-use loads. Returns the number of loads rewritten.
    """
    rewritten = 0
    for load in q.ops_named(kernel, "vector.load"):
        vec_type = load.results[0].type
        if not isinstance(vec_type, ir.VectorType) or vec_type.rank != 1:
            continue
        users = [use.owner for use in load.results[0].uses]
        if not users or any(u.name != "vector.extract" or list(u.operands)[1:] or
                            isinstance(u.results[0].type, ir.VectorType) for u in users):
            continue
        base, *indices = list(load.operands)
        for extract in users:
            (position,) = ir.DenseI64ArrayAttr(extract.attributes["static_position"])
            with ir.InsertionPoint(extract), extract.location:
                last = indices[-1]
                if position:
                    last = arith.addi(last, arith.constant(ir.IndexType.get(), position))
                scalar = memref.load(base, [*indices[:-1], last])
            extract.results[0].replace_all_uses_with(scalar)
            extract.erase()
        load.erase()
        rewritten += 1
    return rewritten
