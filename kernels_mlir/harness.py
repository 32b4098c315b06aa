"""Payloads that exist to be timed: the bench loop around a kernel and the FMA-throughput peak kernel.

Both keep the timed loop in generated native code, so one ctypes call (about 1 us) is
amortised over a whole sample instead of being paid per kernel call.
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, func, scf, vector

from .mlir_types import element_type, mark_entry_point
from .names import BENCH, KERNEL, PEAK


def add_bench_loop(module: ir.Module, callee: str = KERNEL, name: str = BENCH) -> None:
    """Append `name(operands..., n)`: calls `callee` n times on the same operands."""
    kernel = next(op for op in module.body.operations if getattr(op, "sym_name", None)
                  and op.sym_name.value == callee)
    arg_types = list(kernel.type.inputs)
    index = ir.IndexType.get()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(name, ir.FunctionType.get(arg_types + [index], []))
        mark_entry_point(fn)
        entry = fn.add_entry_block()
        with ir.InsertionPoint(entry):
            *operands, count = entry.arguments
            zero, one = arith.constant(index, 0), arith.constant(index, 1)
            loop = scf.ForOp(zero, count, one)
            with ir.InsertionPoint(loop.body):
                func.CallOp([], ir.FlatSymbolRefAttr.get(callee), list(operands))
                scf.YieldOp([])
            func.ReturnOp([])


#: FMAs per accumulator per loop iteration in the peak kernel; amortises the loop branch.
PEAK_UNROLL = 4


def build_fma_peak(dtype: str, lanes: int, accumulators: int) -> ir.Module:
    """`ukl_fma_peak(xy, acc, n)`: n iterations of PEAK_UNROLL x `accumulators` independent FMAs.

    xy is 2 x lanes (the two multiplicands), acc is accumulators x lanes. With enough
    independent chains to cover FMA latency x issue width, this measures the FMA
    throughput of the core for the native vector width.
    """
    elt = element_type(dtype)
    vec = ir.VectorType.get([lanes], elt)
    index = ir.IndexType.get()
    xy_type = ir.MemRefType.get([2, lanes], elt)
    acc_type = ir.MemRefType.get([accumulators, lanes], elt)
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(PEAK, ir.FunctionType.get([xy_type, acc_type, index], []))
        mark_entry_point(fn)
        entry = fn.add_entry_block()
        with ir.InsertionPoint(entry):
            xy, acc, count = entry.arguments
            consts = [arith.constant(index, v) for v in range(max(2, accumulators))]
            zero, one = consts[0], consts[1]
            x = vector.load(vec, xy, [zero, zero])
            y = vector.load(vec, xy, [one, zero])
            init = [vector.load(vec, acc, [consts[r], zero]) for r in range(accumulators)]
            loop = scf.ForOp(zero, count, one, init)
            with ir.InsertionPoint(loop.body):
                chains = list(loop.inner_iter_args)
                for _ in range(PEAK_UNROLL):
                    chains = [vector.fma(x, y, c) for c in chains]
                scf.YieldOp(chains)
            for r, value in enumerate(loop.results):
                vector.store(value, acc, [consts[r], zero])
            func.ReturnOp([])
    return module


def peak_flops_per_iteration(lanes: int, accumulators: int) -> int:
    return 2 * lanes * accumulators * PEAK_UNROLL
