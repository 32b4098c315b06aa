"""A driver (a full GEMM's packing, blocking and edges; a convolution route around GEMM calls) and
the micro-kernels it calls, each optimized on its own (the driver at DRIVER_OPT, a kernel at its
strategy's level), then linked into one LLVM module that goes straight to code generation:
optimizing the linked module again would only re-run the pipeline over code already optimized (a
fifth of a GEMM's compile time)."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

from mlir import ir

from kernels_mlir.gemm import GemmSpec, build_gemm, kernel_symbol
from kernels_mlir.names import KERNEL
from transforms.errors import StrategyError
from transforms.strategy import Strategy

from .codegen import MachineCode, assembly_of, generate, link, optimized_ir
from .compile import fma_width, scalable_codegen_target, strategy_lanes, transformed_kernel
from .lowering import lower_to_llvm_dialect, translate_to_llvm_ir
from .targets import Target

#: The driver (packing, edges, loops) is plain loop code: LLVM's loop and SLP vectorizers (O2) pay
#: off there, while the micro-kernels keep the strategy's own level.
DRIVER_OPT = "O2"
#: Steps a remainder kernel (k % kc deep) drops when its depth cannot take them (e.g. unroll x4 of 77).
DEPTH_BOUND_STEPS = frozenset({"unroll_k", "pipeline", "prefetch", "c_after_loop"})


@dataclass
class CompiledDriver:
    #: What the driver computes (a GemmSpec, a ConvSpec).
    spec: Any
    strategy: Strategy
    target: Target
    code: MachineCode
    seconds: float
    #: The strategy each micro-kernel depth was compiled with (a remainder may drop depth-bound steps).
    kernels: dict[int, Strategy]
    #: The assembly of each micro-kernel alone (the packed traversals' FMAs are all in them).
    kernel_assembly: list[str]

    @property
    def vector_bits(self) -> int:
        """The widest FMA anywhere in the GEMM: in its micro-kernels, or in the direct traversal's
        loop. The kernels' own assembly says it without emitting the whole GEMM's (their machine code
        is the same in the linked module: code generation goes function by function)."""
        return fma_width(self.kernel_assembly or [self.code.assembly], self.strategy, self.target)


def strategy_for_depth(strategy: Strategy, kc: int, lanes: int) -> Strategy:
    """The micro-kernel strategy at depth kc: the same, or without the steps that depth cannot take."""
    kernel = dataclasses.replace(strategy.kernel, kc=kc)
    try:
        candidate = dataclasses.replace(strategy, kernel=kernel)
        candidate.validate_for(lanes)
        return candidate
    except StrategyError:
        steps = tuple(s for s in strategy.steps if s.kind not in DEPTH_BOUND_STEPS)
        fallback = dataclasses.replace(strategy, kernel=kernel, steps=steps, name=f"{strategy.name}-k{kc}")
        fallback.validate_for(lanes)
        return fallback


def compile_gemm(spec: GemmSpec, strategy: Strategy, target: Target, *, jit: bool | None = None) -> CompiledDriver:
    """`strategy` gives the micro-kernel (its mr, nr, dtype must match the spec; its kc is the spec's)
    and the LLVM options; the direct traversal uses only the latter."""
    k = strategy.kernel
    if (k.mr, k.nr, k.dtype, k.group, k.scalable) != (spec.kernel.mr, spec.kernel.nr, spec.dtype, spec.group,
                                                      spec.kernel.scalable):
        raise StrategyError(f"the micro-kernel is {k.mr}x{k.nr} {k.dtype}, the GEMM calls "
                            f"{spec.kernel.mr}x{spec.kernel.nr} {spec.dtype} (the spec's kc is its k-blocking)")
    return compile_driver(spec, spec.kernel_kcs, lambda lanes: build_gemm(spec, lanes), strategy, target, jit=jit)


def compile_driver(spec: Any, kernel_kcs: tuple[int, ...], driver: Callable[[int], ir.Module], strategy: Strategy,
                   target: Target, *, jit: bool | None = None) -> CompiledDriver:
    """`driver(lanes)` (built in an active context) linked with the strategy's micro-kernel at each
    depth of `kernel_kcs` (symbols kernel_symbol(kc))."""
    jit = target.runs_here if jit is None else jit
    lanes = strategy_lanes(strategy, target)
    scalable = strategy.kernel.scalable
    codegen_target = scalable_codegen_target(strategy, target)
    kernels = {kc: strategy_for_depth(strategy, kc, lanes) for kc in kernel_kcs}
    started = time.perf_counter()
    modules = []
    for kc, depth_strategy in kernels.items():
        with ir.Context(), ir.Location.unknown():
            module = transformed_kernel(depth_strategy, target)
            kernel = next(op for op in module.body.operations if op.sym_name.value == KERNEL)
            kernel.attributes["sym_name"] = ir.StringAttr.get(kernel_symbol(kc))
            lower_to_llvm_dialect(module, scalable)
            modules.append(optimized_ir(translate_to_llvm_ir(module), codegen_target, depth_strategy.llvm))
    kernel_assembly = [assembly_of(text, codegen_target, strategy.llvm) for text in modules]
    with ir.Context(), ir.Location.unknown():
        module = driver(lanes)
        lower_to_llvm_dialect(module, scalable)  # a scalable GEMM's length check reads vscale or rdsvl
        modules.insert(0, optimized_ir(translate_to_llvm_ir(module), codegen_target,
                                       dataclasses.replace(strategy.llvm, opt=DRIVER_OPT)))
    code = generate(link(modules), codegen_target, dataclasses.replace(strategy.llvm, opt="none"), jit=jit)
    return CompiledDriver(spec, strategy, target, code, time.perf_counter() - started, kernels, kernel_assembly)
