"""End to end: Strategy -> payload -> steps -> LLVM dialect -> LLVM IR -> machine code."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from mlir import ir

from kernels_mlir.harness import add_bench_loop, build_fma_peak
from kernels_mlir.microkernel import build_microkernel
from transforms.apply import apply_strategy
from transforms.llvm_options import LLVMOptions
from transforms.strategy import Strategy

from .codegen import MachineCode, generate
from .fast_math import apply_fast_math
from .lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from .targets import Target

#: Receives (stage name, text) for every intermediate form, in order.
StageSink = Callable[[str, str], None]

#: The peak kernel is plain FMAs: any level gives the same loop; O2 matches the default strategies.
PEAK_LLVM_OPTIONS = LLVMOptions(opt="O2")


@dataclass
class Compiled:
    strategy: Strategy
    target: Target
    code: MachineCode
    seconds: float
    stages: dict[str, str] = field(default_factory=dict)


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

    apply_strategy(module, strategy, target.lanes(strategy.kernel.dtype), on_stage)
    apply_fast_math(module, strategy.llvm.fast_math)
    return module


def compile_strategy(strategy: Strategy, target: Target, *, jit: bool | None = None,
                     keep_stages: bool = False) -> Compiled:
    """Compile a strategy's micro-kernel plus its bench loop; JIT it when the target runs here."""
    jit = target.runs_here if jit is None else jit
    strategy.validate_for(target.lanes(strategy.kernel.dtype))
    stages: dict[str, str] = {}
    started = time.perf_counter()
    with ir.Context(), ir.Location.unknown():
        module = transformed_kernel(strategy, target, stages if keep_stages else None)
        add_bench_loop(module)
        lower_to_llvm_dialect(module)
        if keep_stages:
            stages["90-llvm-dialect.mlir"] = str(module)
        llvm_ir = translate_to_llvm_ir(module)
    code = generate(llvm_ir, target, strategy.llvm, jit=jit)
    if keep_stages:
        stages["91-llvm-ir.ll"] = code.llvm_ir
        stages[f"92-llvm-ir-{strategy.llvm.opt}.ll"] = code.optimized_ir
        stages["93-assembly.s"] = code.assembly
    return Compiled(strategy, target, code, time.perf_counter() - started, stages)


def compile_peak(target: Target, dtype: str) -> MachineCode:
    """The FMA-throughput kernel for `target`'s native vector width, through the same codegen."""
    with ir.Context(), ir.Location.unknown():
        module = build_fma_peak(dtype, target.lanes(dtype), target.peak_accumulators)
        lower_to_llvm_dialect(module)
        llvm_ir = translate_to_llvm_ir(module)
    return generate(llvm_ir, target, PEAK_LLVM_OPTIONS, jit=target.runs_here)
