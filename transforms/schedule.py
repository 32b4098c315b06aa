"""Reordering the ops of one block (the k-loop body) by a policy, keeping every dependence.

Dependences: def-use inside the block, and the order between any memory write and every other
memory access. Loads among themselves, and pure ops, move freely.
"""
from __future__ import annotations

import random
from typing import Callable

from mlir import ir

from . import ir_query as q
from .errors import StepFailed

POLICIES = ("as-built", "loads-first", "interleave", "random")
_READS = q.LOAD_OPS | {"memref.prefetch"}
_WRITES = {"vector.store", "memref.store", "vector.transfer_write", "func.call"}


def dependences(ops: list[ir.Operation]) -> list[set[int]]:
    """For each op, the indices of the ops in `ops` it must stay after."""
    index = {op: i for i, op in enumerate(ops)}
    deps: list[set[int]] = [set() for _ in ops]
    for i, op in enumerate(ops):
        for inner in [op, *q.walk(op)]:
            for operand in inner.operands:
                owner = operand.owner
                if not isinstance(owner, ir.Block) and owner.operation in index and index[owner.operation] != i:
                    deps[i].add(index[owner.operation])
    memory = [i for i, op in enumerate(ops) if op.name in _READS | _WRITES]
    for a_pos, a in enumerate(memory):
        for b in memory[a_pos + 1:]:
            if ops[a].name in _WRITES or ops[b].name in _WRITES:
                deps[b].add(a)
    return deps


def _load_slices(ops: list[ir.Operation], deps: list[set[int]]) -> dict[int, set[int]]:
    """For each load, itself and the ops (address arithmetic) it transitively needs."""
    slices = {}
    for i, op in enumerate(ops):
        if op.name in q.LOAD_OPS:
            seen, stack = {i}, [i]
            while stack:
                for d in deps[stack.pop()]:
                    if d not in seen and ops[d].name not in _WRITES:
                        seen.add(d)
                        stack.append(d)
            slices[i] = seen
    return slices


def _first_fma_use(ops: list[ir.Operation], users: list[set[int]], start: int, fma_rank: dict[int, int]) -> int:
    """Rank (in FMA order) of the first FMA that consumes `start`, following non-FMA users."""
    best, stack, seen = len(fma_rank), [start], {start}
    while stack:
        for u in users[stack.pop()]:
            if u in fma_rank:
                best = min(best, fma_rank[u])
            elif u not in seen:
                seen.add(u)
                stack.append(u)
    return best


def order(ops: list[ir.Operation], policy: str, *, distance: int = 2, seed: int = 0) -> list[int]:
    """A topological order of `ops` (indices) chosen by `policy`."""
    deps = dependences(ops)
    if policy == "as-built":
        return list(range(len(ops)))
    users: list[set[int]] = [set() for _ in ops]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].add(i)
    slices = _load_slices(ops, deps)
    in_load_slice = set().union(*slices.values()) if slices else set()
    choose: Callable[[list[int], int], int]
    if policy == "loads-first":
        def choose(ready: list[int], fmas_done: int) -> int:
            return min(ready, key=lambda i: (i not in in_load_slice, i))
    elif policy == "interleave":
        fma_rank = {i: r for r, i in enumerate(i for i, op in enumerate(ops) if op.name == "vector.fma")}
        target: dict[int, int] = {}
        for load, members in slices.items():
            want = max(0, _first_fma_use(ops, users, load, fma_rank) - distance)
            for m in members:
                target[m] = min(target.get(m, want), want)

        def choose(ready: list[int], fmas_done: int) -> int:
            due = [i for i in ready if i in target and target[i] <= fmas_done]
            if due:
                return min(due, key=lambda i: (target[i], i))
            compute = [i for i in ready if i not in target]
            if compute:
                return min(compute)
            return min(ready, key=lambda i: (target[i], i))
    elif policy == "random":
        rng = random.Random(seed)

        def choose(ready: list[int], fmas_done: int) -> int:
            return rng.choice(sorted(ready))
    else:
        raise ValueError(f"unknown schedule policy {policy!r}")
    return _kahn(ops, deps, users, choose)


def _kahn(ops, deps, users, choose) -> list[int]:
    waiting = [len(d) for d in deps]
    ready = [i for i, w in enumerate(waiting) if w == 0]
    result, fmas_done = [], 0
    while ready:
        pick = choose(ready, fmas_done)
        ready.remove(pick)
        result.append(pick)
        fmas_done += ops[pick].name == "vector.fma"
        for u in users[pick]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    assert len(result) == len(ops), "dependence cycle"
    return result


def schedule_block(block: ir.Block, policy: str, *, distance: int = 2, seed: int = 0) -> int:
    """Reorder `block` in place (terminator stays last); returns how many ops changed position.

    The order the block ends up in is read back from the IR and checked against the original
    dependences: the step's promise is about the rewritten IR, not about the plan for it.
    """
    ops = [op.operation for op in block.operations]
    terminator, body = ops[-1], ops[:-1]
    new = order(body, policy, distance=distance, seed=seed)
    for i in new:
        body[i].move_before(terminator)
    position = {op: i for i, op in enumerate(body)}
    actual = [position[op.operation] for op in list(block.operations)[:-1]]
    if sorted(actual) != list(range(len(body))) or not is_valid_order(body, actual):
        raise StepFailed(f"schedule: the '{policy}' order breaks a def-use or memory dependence")
    return sum(1 for pos, i in enumerate(actual) if pos != i)


def is_valid_order(ops: list[ir.Operation], permutation: list[int]) -> bool:
    """True when `permutation` (indices into the original `ops`) respects every dependence."""
    position = {i: p for p, i in enumerate(permutation)}
    return all(position[d] < position[i] for i, ds in enumerate(dependences(ops)) for d in ds)
