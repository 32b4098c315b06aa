"""Software pipelining of the k loop by rewriting it (prologue, steady-state loop, epilogue)."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, scf

from . import ir_query as q
from .errors import StepFailed
from .rewrites import clone_ops


def _k_offsets(op: ir.Operation, iv: ir.Value) -> set[int]:
    """The c of every `iv + c` (c = 0 for iv itself) that the op's address depends on."""
    found, stack, seen = set(), [op], set()
    while stack:
        current = stack.pop()
        for v in current.operands:
            if v == iv:
                found.add(0)
            if isinstance(v.owner, ir.Block):
                continue
            producer = v.owner.operation
            if producer.name == "arith.addi" and producer.operands[0] == iv:
                found.add(q.constant_int(producer.operands[1]))
            elif producer not in seen:
                seen.add(producer)
                stack.append(producer)
    return found


def _stages(body: ir.Block, first_step_only: bool) -> tuple[list[ir.Operation], list[ir.Operation]]:
    """Split the loop body into the load stage (loads and their address arithmetic) and the rest.

    With `first_step_only`, only the loads of the body's first k-step (address offset 0 from the
    induction variable) form the load stage: after unrolling, that carries one k-step of operands
    instead of a whole iteration's.
    """
    ops = [op.operation for op in body.operations][:-1]
    position = {op: i for i, op in enumerate(ops)}
    iv = body.arguments[0]
    in_load_stage: set[int] = set()
    for i, op in enumerate(ops):
        if op.name in q.LOAD_OPS and (not first_step_only or _k_offsets(op, iv) == {0}):
            stack = [i]
            while stack:
                j = stack.pop()
                if j in in_load_stage:
                    continue
                in_load_stage.add(j)
                for operand in ops[j].operands:
                    owner = operand.owner
                    if isinstance(owner, ir.Block):
                        if owner == body and operand != body.arguments[0]:
                            raise StepFailed("pipeline: a load depends on a loop-carried value")
                    elif owner.operation in position:
                        stack.append(position[owner.operation])
    load_stage = [op for i, op in enumerate(ops) if i in in_load_stage]
    compute = [op for i, op in enumerate(ops) if i not in in_load_stage]
    return load_stage, compute


def _add(value: ir.Value, offset: int) -> ir.Value:
    return value if offset == 0 else arith.addi(value, arith.constant(ir.IndexType.get(), offset))


def software_pipeline(loop: ir.Operation, stages: int, first_step_only: bool = False) -> int:
    """Rewrite `loop` so iteration i issues the loads of iteration i + stages - 1; returns the
    number of loaded values carried from one iteration to the next."""
    lower, upper, step = (q.constant_int(v) for v in list(loop.operands)[:3])
    if None in (lower, upper, step):
        raise StepFailed("pipeline: the k loop needs constant bounds")
    ahead = stages - 1
    if (upper - lower) // step < stages:
        raise StepFailed(f"pipeline: {((upper - lower) // step)} iterations are fewer than {stages} stages")
    body = loop.regions[0].blocks[0]
    iv, accumulators = body.arguments[0], list(body.arguments)[1:]
    load_stage, compute = _stages(body, first_step_only)
    yield_op = [op.operation for op in body.operations][-1]
    consumers = set(compute) | {yield_op}
    carried = [r for op in load_stage for r in op.results if any(use.owner.operation in consumers for use in r.uses)]
    if not carried:
        raise StepFailed("pipeline: the loop body loads nothing")
    index = ir.IndexType.get()

    with ir.InsertionPoint(loop), loop.location:
        sets = []
        for j in range(ahead):
            mapping = {iv: arith.constant(index, lower + j * step)}
            clone_ops(load_stage, mapping)
            sets.append([mapping[v] for v in carried])
        inits = list(loop.operands)[3:] + [v for s in sets for v in s]
        new_loop = scf.ForOp(arith.constant(index, lower), arith.constant(index, upper - ahead * step),
                             arith.constant(index, step), inits)
    with ir.InsertionPoint(new_loop.body), loop.location:
        new_iv = new_loop.induction_variable
        args = list(new_loop.inner_iter_args)
        new_accs, carried_args = args[:len(accumulators)], args[len(accumulators):]
        mapping = {iv: new_iv, **dict(zip(accumulators, new_accs)), **dict(zip(carried, carried_args))}
        clone_ops(compute, mapping)
        yields = [mapping.get(v, v) for v in yield_op.operands]
        ahead_map = {iv: _add(new_iv, ahead * step)}
        clone_ops(load_stage, ahead_map)
        scf.YieldOp(yields + carried_args[len(carried):] + [ahead_map[v] for v in carried])
    with ir.InsertionPoint(loop), loop.location:
        results = list(new_loop.results)
        accs, rest = results[:len(accumulators)], results[len(accumulators):]
        for j in range(ahead):
            stage_values = rest[j * len(carried):(j + 1) * len(carried)]
            mapping = {iv: arith.constant(index, upper - (ahead - j) * step),
                       **dict(zip(accumulators, accs)), **dict(zip(carried, stage_values))}
            clone_ops(compute, mapping)
            accs = [mapping.get(v, v) for v in yield_op.operands]
    for old, new in zip(loop.results, accs):
        old.replace_all_uses_with(new)
    loop.erase()
    return len(carried)
