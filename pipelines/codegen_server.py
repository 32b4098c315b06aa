"""LLVM code generation in a child process, so an LLVM abort ("Cannot select", an operand it cannot
split) ends the child, not `ukl`: the parent gets a CodegenError, which the lifecycle records as a
`compile_error` with its reproducer.

One persistent child serves a process's requests (a fresh child per compile costs about 0.5 s, a
request to the persistent one a few milliseconds); a request carrying backend flags gets a fresh
child of its own, because LLVM's cl::opt flags are process-global and sticky.

Protocol: one JSON object per line each way. A request is {op, llvm_ir, target, options, jit};
"generate" answers {optimized_ir, object} (object code in base64), "optimize" {optimized_ir},
"assembly" {assembly}; a failure LLVM reports (rather than aborts on) answers {error}.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import IO, Any

import llvmlite.binding as llvm

from transforms.llvm_options import LLVMOptions

from . import codegen
from .codegen import CodegenError
from .targets import Target, target_from_dict

_WHAT = {"generate": "code generation", "optimize": "optimization", "assembly": "emitting assembly"}
#: How much of a dead child's stderr names the cause.
_STDERR_TAIL = 4000


def _serve(requests: IO[str], replies: IO[str]) -> None:
    """The child's loop: answer each request line until stdin closes."""
    flags_set = False
    for line in requests:
        request = json.loads(line)
        options = LLVMOptions(**request["options"])
        if options.backend_flags() and not flags_set:
            codegen.initialize()
            for flag in options.backend_flags():
                llvm.set_option("ukl", flag)
            flags_set = True
        try:
            reply = _answer(request["op"], request["llvm_ir"], target_from_dict(request["target"]), options,
                            request["jit"])
        except CodegenError as exc:
            reply = {"error": str(exc)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _answer(op: str, llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> dict[str, str]:
    if op == "optimize":
        return {"optimized_ir": codegen.optimized_ir_here(llvm_ir, target, options)}
    if op == "assembly":
        return {"assembly": codegen.assembly_here(llvm_ir, target, options, jit)}
    optimized, obj = codegen.object_here(llvm_ir, target, options, jit)
    return {"optimized_ir": optimized, "object": base64.b64encode(obj).decode()}


class _Child:
    """One child process and the file its stderr goes to (a file, not a pipe: LLVM's warnings
    would fill a pipe nobody reads and stall the child)."""

    def __init__(self) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+b")
        # -I: isolated mode, so only installed packages are imported (never a pipelines/ in the
        # working directory).
        self.proc = subprocess.Popen([sys.executable, "-I", "-m", "pipelines.codegen_server"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1)
        self.pid = os.getpid()

    def ask(self, request: dict[str, Any]) -> dict[str, str]:
        """The reply, or CodegenError naming LLVM's last words when the child died on the request."""
        start = self.stderr.seek(0, os.SEEK_END)
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self.proc.wait()
            self.stderr.seek(start)
            raise CodegenError(f"LLVM aborted {_WHAT[request['op']]} (it runs in a child process, "
                               f"which died with status {self.proc.returncode}): "
                               f"{_last_words(self.stderr.read()[-_STDERR_TAIL:].decode(errors='replace'))}")
        reply = json.loads(line)
        if "error" in reply:
            raise CodegenError(reply["error"])
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        self.stderr.close()


def _last_words(stderr: str) -> str:
    """The line that says why LLVM stopped (its "LLVM ERROR: ..." line when there is one)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("LLVM ERROR"):
            return line[:500]
    return lines[-1][:500] if lines else "no message"


_persistent: _Child | None = None
_lock = threading.Lock()


def request(op: str, llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> dict[str, str]:
    """Ask a child for `op` on `llvm_ir`: the persistent child, or a fresh one when `options` carry
    backend flags. A child that died is replaced on the next request."""
    global _persistent
    message = {"op": op, "llvm_ir": llvm_ir, "target": target.to_dict(), "options": options.__dict__, "jit": jit}
    if options.backend_flags():
        child = _Child()
        try:
            return child.ask(message)
        finally:
            child.close()
    with _lock:
        # A forked process must not share its parent's child (their requests would interleave).
        if _persistent is None or _persistent.pid != os.getpid() or _persistent.proc.poll() is not None:
            _persistent = _Child()
        try:
            return _persistent.ask(message)
        except CodegenError:
            if _persistent.proc.poll() is not None:
                _persistent.close()
                _persistent = None
            raise


def object_code(llvm_ir: str, target: Target, options: LLVMOptions, jit: bool) -> tuple[str, bytes]:
    reply = request("generate", llvm_ir, target, options, jit)
    return reply["optimized_ir"], base64.b64decode(reply["object"])


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
