"""MLIR (linalg/vector/scf) -> LLVM dialect -> LLVM IR text. The one place the pass pipeline lives."""
from __future__ import annotations

from mlir import ir
from mlir.dialects.llvm import translate_module_to_llvmir
from mlir.passmanager import PassManager

from kernels_mlir.names import c_interface

# Order matters: expand-strided-metadata before lower-affine (else affine.apply is left
# behind), vector-to-scf with full unroll (else n-D transfers go through a memref<vector>
# alloca), ub-to-llvm last (ub.poison from vectorization). The x86vector and arm_neon ops that the
# dot-product routes produce are lowered with the vector dialect.
TO_LLVM_DIALECT = ",".join([
    "convert-vector-to-scf{full-unroll=true}",
    "convert-linalg-to-loops",
    "expand-strided-metadata",
    "lower-affine",
    "convert-scf-to-cf",
    "convert-vector-to-llvm{enable-x86vector=true enable-arm-neon=true}",
    "finalize-memref-to-llvm",
    "convert-func-to-llvm",
    "convert-index-to-llvm",
    "convert-arith-to-llvm",
    "convert-cf-to-llvm",
    "convert-ub-to-llvm",
    "reconcile-unrealized-casts",
])


#: SME first (the pass order of upstream's test-lower-to-arm-sme): vector ops on [n]x[m] tiles become
#: ZA tile loads, outer products and stores; consecutive widening outer products fuse into bfmopa /
#: smopa 4-way; functions using ZA enter streaming mode with a fresh ZA at entry and leave it at exit
#: (one switch per call, outside the k loop); tiles are allocated on the CFG.
ARM_SME = ",".join([
    "arm-sme-vector-legalization",
    "canonicalize",
    "cse",
    "convert-arith-to-arm-sme",
    "convert-vector-to-arm-sme",
    "func.func(arm-sme-outer-product-fusion)",
    "convert-arm-sme-to-scf",
    "convert-vector-to-scf{full-unroll=true}",
    "func.func(enable-arm-streaming{streaming-mode=streaming-locally za-mode=new-za if-required-by-ops})",
    "convert-scf-to-cf",
    "func.func(convert-arm-sme-to-llvm)",
    "canonicalize",
    "cse",
])
#: Scalable vectors need the SVE lowering of vector ops (vscale, masks) on top of the common one.
_SVE_VECTOR_TO_LLVM = ("convert-vector-to-llvm{enable-x86vector=true enable-arm-neon=true}",
                       "convert-vector-to-llvm{enable-x86vector=true enable-arm-neon=true enable-arm-sve=true}")


class LoweringError(RuntimeError):
    pass


def pipeline(scalable: str | None = None) -> str:
    """The pass pipeline for a kernel that is fixed-width (None), SVE or SME."""
    if scalable is None:
        return TO_LLVM_DIALECT
    common = TO_LLVM_DIALECT.replace(*_SVE_VECTOR_TO_LLVM)
    return f"{ARM_SME},{common}" if scalable == "sme" else common


#: What enable-arm-streaming gives a function using ZA; func-to-llvm copies it onto its C wrapper.
_STREAMING_ATTRIBUTES = ("arm_locally_streaming", "arm_new_za")


def lower_to_llvm_dialect(module: ir.Module, scalable: str | None = None) -> None:
    """Every function defined here gets its C wrapper (what Python and the drivers in other modules call).
    A declaration does not (what llvm-request-c-wrappers would do): a driver then calls a micro-kernel
    compiled apart directly, with the descriptors' fields as arguments, not through a wrapper that stores
    them on the stack for the callee's wrapper to read back (about 40 instructions per call)."""
    for op in module.body.operations:
        if op.operation.name == "func.func" and len(op.regions[0].blocks):
            op.attributes["llvm.emit_c_interface"] = ir.UnitAttr.get()
    try:
        PassManager.parse(f"builtin.module({pipeline(scalable)})", context=module.context).run(module.operation)
    except ir.MLIRError as exc:
        raise LoweringError(f"lowering to the LLVM dialect failed: {exc}") from None
    if scalable == "sme":
        _plain_wrappers(module)


def _plain_wrappers(module: ir.Module) -> None:
    """C wrappers only unpack descriptors and call the kernel, which switches streaming mode and makes its
    own ZA. A wrapper with a new ZA of its own would make that call a nested one: a lazy ZA save around it
    (TPIDR2_EL0 set, __arm_tpidr2_save called), and two mode switches per call instead of one."""
    for op in module.body.operations:
        if op.operation.name == "llvm.func" and op.sym_name.value.startswith(c_interface("")):
            for name in _STREAMING_ATTRIBUTES:
                if name in op.attributes:
                    del op.attributes[name]


def translate_to_llvm_ir(module: ir.Module) -> str:
    return str(translate_module_to_llvmir(module.operation))
