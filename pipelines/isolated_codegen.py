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

from .targets import Target


def _child() -> None:
    from .codegen import initialize, optimize, target_machine
    request = json.load(sys.stdin)
    target = Target(**request["target"])
    options = LLVMOptions(**request["options"])
    initialize()
    for flag in options.backend_flags():
        llvm.set_option("ukl", flag)
    module = llvm.parse_assembly(request["llvm_ir"])
    tm = target_machine(target, options, jit=request["jit"])
    module.triple = target.triple
    module.data_layout = str(tm.target_data)
    optimize(module, tm, options.opt)
    json.dump({"optimized_ir": str(module), "assembly": tm.emit_assembly(module),
               "object": base64.b64encode(tm.emit_object(module)).decode()}, sys.stdout)


def generate_in_child(llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> tuple[str, str, bytes]:
    """(optimized IR, assembly, object code) produced by a fresh process with `options`' flags."""
    request = {"llvm_ir": llvm_ir, "target": {**target.to_dict(), "runs_here": target.runs_here},
               "options": options.__dict__, "jit": jit}
    proc = subprocess.run([sys.executable, "-m", "pipelines.isolated_codegen"], input=json.dumps(request),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"isolated code generation failed: {proc.stderr.strip()[-500:]}")
    reply = json.loads(proc.stdout)
    return reply["optimized_ir"], reply["assembly"], base64.b64decode(reply["object"])


if __name__ == "__main__":
    _child()
