"""End to end: Strategy -> payload -> steps -> LLVM dialect -> LLVM IR -> machine code."""
from __future__ import annotations

import time
from functools import lru_cache
from dataclasses import dataclass, field, replace
from typing import Callable

from mlir import ir

from kernels_mlir.harness import DotOp, add_bench_loop, build_dot_peak, build_fma_peak
from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.names import KERNEL
from kernels_mlir.spec import DTYPES
from transforms.apply import apply_strategy
from transforms.instructions import INSTRUCTIONS, Instruction
from transforms.llvm_options import LLVMOptions
from transforms.plan import MIN_VECTOR_BITS
from transforms.strategy import Strategy

from .asm_analysis import widest_fma_bits
from .codegen import MachineCode, generate
from .fast_math import apply_fast_math
from .lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from .targets import Target

#: Receives (stage name, text) for every intermediate form, in order.
StageSink = Callable[[str, str], None]

#: The peak kernel is plain independent FMAs: every level gives the same loop.
PEAK_LLVM_OPTIONS = LLVMOptions()


@dataclass
class Compiled:
    strategy: Strategy
    target: Target
    code: MachineCode
    seconds: float
    stages: dict[str, str] = field(default_factory=dict)

    @property
    def vector_bits(self) -> int:
        return fma_width([self.code.assembly], self.strategy, self.target, KERNEL)


def strategy_width(strategy: Strategy, target: Target) -> int:
    """The vector width (bits) a strategy's code is built for on `target`: the one place it is resolved."""
    return target.width(strategy.vector_bits)


def strategy_lanes(strategy: Strategy, target: Target) -> int:
    """Vector lanes of the kernel's dtype at the width the strategy asks of `target`."""
    return target.lanes(strategy.kernel.dtype, strategy_width(strategy, target))


def scalable_width(strategy: Strategy, target: Target) -> int:
    """The vector length a scalable kernel's code is read at: its core's (SVE's, or SME's streaming one), or
    128 bits (vscale 1) on an architecture level that leaves it to the implementation."""
    return target.scalable_bits(strategy.kernel.scalable) or MIN_VECTOR_BITS


#: Features a scalable kernel's code is generated with, on top of its core's. SME kernels stay within SME
#: (no SME2): qemu, which verifies them, executes no SME2 instruction (its multi-vector zip is SIGILL), and
#: LLVM would choose them on a core that has SME2 (apple-m4).
SCALABLE_FEATURES = {"sve": "+sve", "sme": "+sme,-sme2"}


def scalable_codegen_target(strategy: Strategy, target: Target) -> Target:
    kind = strategy.kernel.scalable
    if kind is None:
        return target
    return replace(target, features=",".join(filter(None, (target.features, SCALABLE_FEATURES[kind]))))


def fma_width(assemblies: list[str], strategy: Strategy, target: Target, symbol: str | None = None) -> int:
    """The width the code's FMAs actually use (the widest in `assemblies`, read off the assembly), which
    the peak it is compared with must match; the strategy's width when no FMA is recognised."""
    if strategy.kernel.scalable:
        return scalable_width(strategy, target)
    widths = [bits for bits in (widest_fma_bits(text, symbol) for text in assemblies) if bits]
    return max(widths, default=None) or strategy_width(strategy, target)


def limit_vector_width(module: ir.Module, bits: int) -> None:
    """Tell LLVM the widest vectors every function may use (what clang's -mprefer-vector-width sets):
    wider MLIR vectors are split to `bits`, and narrower widths stay legal."""
    for op in module.body.operations:
        if op.operation.name != "func.func":
            continue
        existing = list(ir.ArrayAttr(op.attributes["passthrough"])) if "passthrough" in op.attributes else []
        width = [ir.ArrayAttr.get([ir.StringAttr.get(key), ir.StringAttr.get(str(bits))])
                 for key in ("min-legal-vector-width", "prefer-vector-width")]
        op.attributes["passthrough"] = ir.ArrayAttr.get(existing + width)


def transformed_kernel(strategy: Strategy, target: Target, stages: dict[str, str] | None = None) -> ir.Module:
    """The micro-kernel payload with the strategy applied (inside an active context); records each
    stage's IR and transform script in `stages` when given."""
    module = build_microkernel(strategy.kernel)
    if stages is not None:
        stages["00-payload.mlir"] = str(module)

    def on_stage(name: str, mod: ir.Module, script: str) -> None:
        if stages is not None:
            stages[f"{name}.transform.mlir"] = script
            stages[f"{name}.mlir"] = str(mod)

    apply_strategy(module, strategy, strategy_lanes(strategy, target), on_stage)
    apply_fast_math(module, strategy.llvm.fast_math)
    limit_vector_width(module, strategy_width(strategy, target))
    return module


def compile_strategy(strategy: Strategy, target: Target, *, jit: bool | None = None, keep_stages: bool = False,
                     stages: dict[str, str] | None = None) -> Compiled:
    """Compile a strategy's micro-kernel plus its bench loop; JIT it when the target runs here.

    With `keep_stages` (or a `stages` dict to fill), every intermediate form is kept as it is
    produced: when a step fails, `stages` holds the forms up to it (a reproducer's dumps).
    """
    jit = target.runs_here if jit is None else jit
    strategy.validate_for(strategy_lanes(strategy, target))
    stages = {} if stages is None and keep_stages else stages
    started = time.perf_counter()
    with ir.Context(), ir.Location.unknown():
        module = transformed_kernel(strategy, target, stages)
        add_bench_loop(module)
        lower_to_llvm_dialect(module, strategy.kernel.scalable)
        if stages is not None:
            stages["90-llvm-dialect.mlir"] = str(module)
        llvm_ir = translate_to_llvm_ir(module)
    if stages is not None:
        stages["91-llvm-ir.ll"] = llvm_ir
    code = generate(llvm_ir, scalable_codegen_target(strategy, target), strategy.llvm, jit=jit)
    if stages is not None:
        stages[f"92-llvm-ir-{strategy.llvm.opt}.ll"] = code.optimized_ir
        stages["93-assembly.s"] = code.assembly
    return Compiled(strategy, target, code, time.perf_counter() - started, {} if stages is None else stages)


def dot_op(inst: Instruction, bits: int) -> DotOp:
    """How the peak kernel emits `inst` at `bits`-wide vectors."""
    rows, cols = inst.tile(bits)
    d = DTYPES[inst.dtype]
    return DotOp(inst.op, inst.intrinsic_at(bits) if inst.intrinsic else "", d.a.mlir, inst.input_count(bits),
                 d.acc.mlir, rows * cols)


@lru_cache(maxsize=None)
def compile_peak(target: Target, dtype: str, bits: int, instruction: str | None = None,
                 chains: int | None = None) -> MachineCode:
    """The throughput kernel for `target` at `bits`-wide vectors, through the same codegen (compiled
    once per process, width and instruction): FMAs, or the dot-product `instruction` a kernel uses;
    `chains` independent accumulator chains (default the target's peak_accumulators; one chain
    measures the instruction's latency)."""
    chains = chains or target.peak_accumulators
    with ir.Context(), ir.Location.unknown():
        if instruction is None:
            module = build_fma_peak(dtype, target.lanes(dtype, bits), chains)
        else:
            module = build_dot_peak(dot_op(INSTRUCTIONS[instruction], bits), chains)
        limit_vector_width(module, bits)
        lower_to_llvm_dialect(module)
        llvm_ir = translate_to_llvm_ir(module)
    return generate(llvm_ir, target, PEAK_LLVM_OPTIONS, jit=target.runs_here)
