"""LLVM IR -> (light) opt -> target machine -> assembly, object code, or an MCJIT engine (llvmlite)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import llvmlite.binding as llvm

from transforms.llvm_options import LLVMOptions

from .targets import Target

_SPEED_LEVEL = {"O1": 1, "O2": 2, "O3": 3}


class CodegenError(RuntimeError):
    """LLVM refused the module (parse, verify, optimize or emit): the candidate does not compile."""


def _llvm(what: str, action):
    """Run an llvmlite action; its RuntimeErrors (LLVM's diagnostics) become CodegenError, and
    nothing else is caught (a NotImplementedError is a bug, not a compile error)."""
    try:
        return action()
    except NotImplementedError:
        raise
    except RuntimeError as exc:
        raise CodegenError(f"LLVM {what} failed: {' '.join(str(exc).split())[:500]}") from None


@lru_cache(maxsize=1)
def initialize() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    llvm.initialize_native_asmparser()  # inline asm with instructions (the clock loop) in the host's code


def target_machine(target: Target, options: LLVMOptions, *, jit: bool = False) -> llvm.TargetMachine:
    initialize()
    cpu = options.cpu or target.cpu
    features = options.features if options.features is not None else target.features
    return llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=cpu, features=features, opt=options.codegen_opt, reloc="pic" if not jit else "default",
        codemodel="jitdefault", jit=jit)


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine, level: str) -> None:
    """Run LLVM's default pipeline at `level`; "none" leaves the IR exactly as MLIR produced it."""
    if level == "none":
        return
    pto = llvm.create_pipeline_tuning_options(speed_level=_SPEED_LEVEL[level])
    builder = llvm.create_pass_builder(tm, pto)
    builder.getModulePassManager().run(module, builder)


@dataclass
class MachineCode:
    """What codegen produced for one module: `engine` when JIT-compiled, else `object_code` (ELF).

    The assembly is emitted on first use, from the very optimized module the object came from: a
    GEMM sweep that never reads it does not pay a second code generation (a quarter of a GEMM's
    compile time)."""

    llvm_ir: str
    optimized_ir: str
    _assembly: str | None
    engine: llvm.ExecutionEngine | None
    object_code: bytes | None = None
    _emit: Callable[[], str] | None = field(default=None, repr=False)

    @property
    def assembly(self) -> str:
        if self._assembly is None:
            self._assembly = self._emit()
            self._emit = None
        return self._assembly

    def address(self, symbol: str) -> int:
        if self.engine is None:
            raise RuntimeError("this code was compiled for another target and cannot run here")
        return self.engine.get_function_address(symbol)


def optimized_module(llvm_ir: str, target: Target, options: LLVMOptions, *,
                     jit: bool) -> tuple[llvm.ModuleRef, llvm.TargetMachine]:
    """The one sequence every compilation takes, here or in the isolated child: parse, verify, set
    the target's triple and data layout, run the optimization pipeline at the strategy's level."""
    initialize()
    module = _llvm("parse", lambda: llvm.parse_assembly(llvm_ir))
    _llvm("verify", module.verify)
    tm = target_machine(target, options, jit=jit)
    module.triple = target.triple
    module.data_layout = str(tm.target_data)
    _llvm("optimization", lambda: optimize(module, tm, options.opt))
    return module, tm


def optimized_ir_here(llvm_ir: str, target: Target, options: LLVMOptions) -> str:
    return str(optimized_module(llvm_ir, target, options, jit=False)[0])


def assembly_here(llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> str:
    module, tm = optimized_module(llvm_ir, target, options, jit=jit)
    return _llvm("code generation", lambda: tm.emit_assembly(module))


def object_here(llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> tuple[str, bytes]:
    """(optimized IR, object code)."""
    module, tm = optimized_module(llvm_ir, target, options, jit=jit)
    return str(module), _llvm("code generation", lambda: tm.emit_object(module))


def optimized_ir(llvm_ir: str, target: Target, options: LLVMOptions) -> str:
    """`llvm_ir` after the default pipeline at `options.opt` for `target` and the options' CPU (before
    linking with other code)."""
    return _server().request("optimize", llvm_ir, target, options, False)["optimized_ir"]


def link(llvm_irs: list[str]) -> str:
    """One LLVM module from several (e.g. a GEMM driver and its separately compiled micro-kernels)."""
    initialize()
    main, *rest = (llvm.parse_assembly(text) for text in llvm_irs)
    for other in rest:
        main.link_in(other)
    return str(main)


def generate(llvm_ir: str, target: Target, options: LLVMOptions, *, jit: bool) -> MachineCode:
    """Object code (and its assembly), JIT-loaded into this process when `jit`. LLVM runs in a
    child (codegen_server): an abort there is a CodegenError here. The assembly is asked for when
    first read (a sweep that never reads it does not pay a second code generation)."""
    optimized, obj = _server().object_code(llvm_ir, target, options, jit)
    unoptimized = dataclasses.replace(options, opt="none")

    def emit() -> str:
        return _server().request("assembly", optimized, target, unoptimized, jit)["assembly"]

    if not jit:
        return MachineCode(llvm_ir, optimized, None, None, obj, _emit=emit)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(target, options, jit=True))
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    _llvm("JIT", engine.finalize_object)
    return MachineCode(llvm_ir, optimized, None, engine, _emit=emit)


def assembly_of(llvm_ir: str, target: Target, options: LLVMOptions) -> str:
    """The assembly of optimized IR as it is (no further optimization): e.g. one part of a linked module."""
    options = dataclasses.replace(options, opt="none")
    return _server().request("assembly", llvm_ir, target, options, False)["assembly"]


def _server():
    """The child's side imports this module for the `*_here` functions, so it is imported late."""
    from . import codegen_server
    return codegen_server
