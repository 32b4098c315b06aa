"""Code generation in a child process, for backend flags that must not leak into this one.

Protocol: JSON on stdin {llvm_ir, target, options}; JSON on stdout {optimized_ir, assembly,
object (base64)}. The parent loads the object into MCJIT, so the code runs in the parent.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import llvmlite.binding as llvm

from transforms.llvm_options import LLVMOptions

from .codegen import CodegenError, initialize, optimized_module
from .targets import Target, target_from_dict


def _child() -> None:
    request = json.load(sys.stdin)
    target = target_from_dict(request["target"])
    options = LLVMOptions(**request["options"])
    initialize()
    for flag in options.backend_flags():
        llvm.set_option("ukl", flag)
    module, tm = optimized_module(request["llvm_ir"], target, options, jit=request["jit"])
    json.dump({"optimized_ir": str(module), "assembly": tm.emit_assembly(module),
               "object": base64.b64encode(tm.emit_object(module)).decode()}, sys.stdout)


def generate_in_child(llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> tuple[str, str, bytes]:
    """(optimized IR, assembly, object code) produced by a fresh process with `options`' flags."""
    request = {"llvm_ir": llvm_ir, "target": target.to_dict(),
               "options": options.__dict__, "jit": jit}
    # -I: isolated mode, so only installed packages are imported (never a pipelines/ in the working directory).
    proc = subprocess.run([sys.executable, "-I", "-m", "pipelines.isolated_codegen"], input=json.dumps(request),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodegenError(f"isolated code generation failed: {proc.stderr.strip()[-500:]}")
    reply = json.loads(proc.stdout)
    return reply["optimized_ir"], reply["assembly"], base64.b64decode(reply["object"])


if __name__ == "__main__":
    _child()
