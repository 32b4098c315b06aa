"""Payloads that exist to be timed: the bench loop around a kernel and the FMA-throughput peak kernel.

Both keep the timed loop in generated native code, so one ctypes call (about 1 us) is
amortised over a whole sample instead of being paid per kernel call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mlir import ir
from mlir.dialects import arith, func, llvm, memref, scf, vector

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
    return _build_peak(element_type(dtype), lanes, element_type(dtype), lanes, accumulators,
                       lambda x, y, acc: vector.fma(x, y, acc))


@dataclass(frozen=True)
class DotOp:
    """How to emit one dot-product instruction: its MLIR op (operands acc, x, y) or LLVM intrinsic."""

    op: str
    intrinsic: str
    #: MLIR type of the multiplicands' elements and how many one register holds; the accumulator's.
    input_type: str
    inputs: int
    acc_type: str
    lanes: int


def build_dot_peak(dot: DotOp, accumulators: int) -> ir.Module:
    """`ukl_fma_peak(xy, acc, n)` for a dot-product instruction: the same loop of independent
    chains, each step one instruction (vdpbf16ps, vpdpbusd, smmla, ...) instead of an FMA."""
    acc_vec = ir.VectorType.get([dot.lanes], ir.Type.parse(dot.acc_type))

    def step(x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
        if dot.op:
            return ir.Operation.create(dot.op, results=[acc_vec], operands=[acc, x, y]).result
        return llvm.call_intrinsic(acc_vec, dot.intrinsic, [acc, x, y], [], [])

    return _build_peak(ir.Type.parse(dot.input_type), dot.inputs, ir.Type.parse(dot.acc_type), dot.lanes,
                       accumulators, step)


def _build_peak(in_elt: ir.Type, inputs: int, acc_elt: ir.Type, lanes: int, accumulators: int,
                step: Callable[[ir.Value, ir.Value, ir.Value], ir.Value]) -> ir.Module:
    vec = ir.VectorType.get([inputs], in_elt)
    acc_vec = ir.VectorType.get([lanes], acc_elt)
    index = ir.IndexType.get()
    xy_type = ir.MemRefType.get([2, inputs], in_elt)
    acc_type = ir.MemRefType.get([accumulators, lanes], acc_elt)
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
            init = [vector.load(acc_vec, acc, [consts[r], zero]) for r in range(accumulators)]
            loop = scf.ForOp(zero, count, one, init)
            with ir.InsertionPoint(loop.body):
                chains = list(loop.inner_iter_args)
                for _ in range(PEAK_UNROLL):
                    chains = [step(x, y, c) for c in chains]
                scf.YieldOp(chains)
            for r, value in enumerate(loop.results):
                vector.store(value, acc, [consts[r], zero])
            func.ReturnOp([])
    return module


def peak_flops_per_iteration(macs_per_step: int, accumulators: int) -> int:
    """Operations of one peak-loop iteration: 2 per multiply-add (an FMA's lanes, or a dot product's
    multiply-adds), over every chain and unrolled step."""
    return 2 * macs_per_step * accumulators * PEAK_UNROLL


#: Dependent integer adds per clock-loop iteration (amortises the loop's own branch).
CLOCK_UNROLL = 16
CLOCK = "ukl_clock"
#: One integer add of a register to itself, per architecture: latency one cycle on every core we know
#: (x86's add sets the flags, which the loop's own counter test reads: said, or the loop never ends).
_ADD_ONE = {"x86_64": ("addq $$1, $0", "=r,0,~{flags}"), "aarch64": ("add $0, $0, #1", "=r,0")}


def build_clock_loop(arch: str) -> ir.Module:
    """`ukl_clock(x: memref<1xi64>, n)`: n x CLOCK_UNROLL dependent adds (inline asm, which no optimizer
    folds), one cycle each: the loop's time per add is the core's clock period."""
    asm, constraints = _ADD_ONE[arch]
    i64, index = ir.IntegerType.get_signless(64), ir.IndexType.get()
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(CLOCK, ir.FunctionType.get([ir.MemRefType.get([1], i64), index], []))
        mark_entry_point(fn)
        with ir.InsertionPoint(fn.add_entry_block()):
            cell, count = fn.entry_block.arguments
            zero, one = arith.constant(index, 0), arith.constant(index, 1)
            start = memref.load(cell, [zero])
            loop = scf.ForOp(zero, count, one, [start])
            with ir.InsertionPoint(loop.body):
                x = loop.inner_iter_args[0]
                for _ in range(CLOCK_UNROLL):
                    x = llvm.inline_asm(i64, [x], asm, constraints)
                scf.YieldOp([x])
            memref.store(loop.results[0], cell, [zero])
            func.ReturnOp([])
    return module
