"""MLIR (linalg/vector/scf) -> LLVM dialect -> LLVM IR text. The one place the pass pipeline lives."""
from __future__ import annotations

from mlir import ir
from mlir.dialects.llvm import translate_module_to_llvmir
from mlir.passmanager import PassManager

# Order matters: expand-strided-metadata before lower-affine (else affine.apply is left
# behind), vector-to-scf with full unroll (else n-D transfers go through a memref<vector>
# alloca), ub-to-llvm last (ub.poison from vectorization). The x86vector and arm_neon ops that the
# dot-product routes produce are lowered with the vector dialect.
TO_LLVM_DIALECT = ",".join([
    "func.func(llvm-request-c-wrappers)",
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


class LoweringError(RuntimeError):
    pass


def lower_to_llvm_dialect(module: ir.Module) -> None:
    try:
        PassManager.parse(f"builtin.module({TO_LLVM_DIALECT})", context=module.context).run(module.operation)
    except ir.MLIRError as exc:
        raise LoweringError(f"lowering to the LLVM dialect failed: {exc}") from None


def translate_to_llvm_ir(module: ir.Module) -> str:
    return str(translate_module_to_llvmir(module.operation))
