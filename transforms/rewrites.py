"""IR rewrites written in Python where upstream MLIR has no transform or pattern for the job."""
from __future__ import annotations

from typing import Callable

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


def defer_accumulator_reads(loop: ir.Operation) -> int:
    """Start the k loop's accumulators at zero and add C's values after the loop.

    BLIS kernels do this: the FMAs no longer wait on C's cache misses at the start of the call,
    and C's lines (prefetched early) have the whole loop to arrive. An accumulator's initial
    value is computed by a slice of ops before the loop (C's loads, and whatever reshapes them);
    the slice moves after the loop. Returns the number of accumulators deferred.
    """
    block_ops = [op.operation for op in loop.block.operations]
    before = set(block_ops[:block_ops.index(loop.operation)])
    deferred = 0
    for i, init in enumerate(list(loop.operands)[3:]):
        chosen = _read_slice(init, loop, before)
        if not chosen:
            continue
        vec_type = ir.VectorType(init.type)
        zero = ir.DenseElementsAttr.get_splat(vec_type, ir.FloatAttr.get(vec_type.element_type, 0.0))
        with ir.InsertionPoint(loop), loop.location:
            loop.operands[3 + i] = arith.constant(vec_type, zero)
        result = loop.results[i]
        users = [use.owner for use in result.uses]
        first = min(users, key=lambda op: block_ops.index(op.operation)) if users else None
        if first is None:
            continue
        for op in sorted(chosen, key=block_ops.index):
            op.move_before(first)
        with ir.InsertionPoint(first), loop.location:
            total = arith.addf(result, init)
        for use in list(result.uses):
            if use.owner != total.owner:
                use.owner.operands[use.operand_number] = total
        deferred += 1
    return deferred


def _read_slice(value: ir.Value, loop: ir.Operation, before: set) -> list[ir.Operation]:
    """The ops before `loop` that compute `value` from memory reads and are used only for it
    (constants stay where they are); empty when there is no read or the slice is shared."""
    if not isinstance(value.type, ir.VectorType):
        return []
    chosen: list[ir.Operation] = []
    stack = [value]
    while stack:
        v = stack.pop()
        owner = v.owner
        if isinstance(owner, ir.Block):
            continue
        op = owner.operation
        if op not in before or op.name == "arith.constant" or op in chosen:
            continue
        chosen.append(op)
        stack.extend(op.operands)
    members = set(chosen) | {loop.operation}
    if not any(op.name in q.LOAD_OPS for op in chosen):
        return []
    for op in chosen:
        for result in op.results:
            if any(use.owner.operation not in members for use in result.uses):
                return []
    return chosen


def clone_ops(ops: list[ir.Operation], mapping: dict, on_result: Callable[[ir.Value, ir.Value], None] | None = None
              ) -> None:
    """Clone `ops` at the current insertion point, remapping operands through `mapping`, which learns
    each clone's results; `on_result(old, new)` may then remap a result differently."""
    for op in ops:
        new = op.clone()
        for i, operand in enumerate(new.operands):
            if operand in mapping:
                new.operands[i] = mapping[operand]
        for old, fresh in zip(op.results, new.results):
            mapping[old] = fresh
            if on_result is not None:
                on_result(old, fresh)
