"""Read-only questions about payload IR, used by steps to check what they promise."""
from __future__ import annotations

from typing import Iterator

from mlir import ir

from kernels_mlir.names import KERNEL


#: Ops that read memory into a value (what schedules and pipelining move around).
LOAD_OPS = frozenset({"vector.load", "memref.load", "vector.transfer_read"})


def walk(op: ir.Operation) -> Iterator[ir.Operation]:
    """Every operation nested in `op` (pre-order), not including `op` itself."""
    for region in op.regions:
        for block in region.blocks:
            for child in block.operations:
                child = child.operation
                yield child
                yield from walk(child)


def kernel_function(module: ir.Module) -> ir.Operation:
    for op in module.body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == KERNEL:
            return op.operation
    raise LookupError(f"no func.func @{KERNEL} in module")


def ops_named(root: ir.Operation, name: str) -> list[ir.Operation]:
    return [op for op in walk(root) if op.name == name]


def inside_loop(op: ir.Operation) -> bool:
    parent = op.parent
    while parent is not None and parent.name != "func.func":
        if parent.name == "scf.for":
            return True
        parent = parent.parent
    return False


def constant_int(value: ir.Value) -> int | None:
    """The integer a value holds when an arith.constant defines it, else None."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    op = owner.operation
    if op.name == "arith.constant":
        return ir.IntegerAttr(op.attributes["value"]).value
    return None


def vector_types(root: ir.Operation) -> list[ir.VectorType]:
    """Every vector type produced by an op under `root`."""
    found = []
    for op in walk(root):
        for result in op.results:
            if isinstance(result.type, ir.VectorType):
                found.append(ir.VectorType(result.type))
    return found


def trip_count(for_op: ir.Operation) -> int | None:
    """Iterations of an scf.for with constant bounds, else None."""
    lower, upper, step = (constant_int(v) for v in list(for_op.operands)[:3])
    if None in (lower, upper, step):
        return None
    return max(0, -(-(upper - lower) // step))
