"""Runs a piece of transform-dialect IR on the kernel function of a payload module."""
from __future__ import annotations

from typing import Callable

from mlir import ir
from mlir.dialects import transform
from mlir.dialects.transform import interpreter, structured

from kernels_mlir.names import KERNEL

from .errors import StepFailed

Emit = Callable[[ir.Value], None]


def match_kernel(root: ir.Value) -> ir.Value:
    """Handle to the micro-kernel func.func (and only it: payloads may hold helper functions)."""
    attrs = ir.DictAttr.get({"sym_name": ir.StringAttr.get(KERNEL)})
    return structured.MatchOp(transform.AnyOpType.get(), root,
                              ops=ir.ArrayAttr.get([ir.StringAttr.get("func.func")]), op_attrs=attrs).result


def any_op() -> ir.Type:
    return transform.AnyOpType.get()


def match(target: ir.Value, *names: str) -> ir.Value:
    return structured.MatchOp.match_op_names(target, list(names)).result


def apply_patterns(target: ir.Value, *populate: Callable[[], object]) -> None:
    """transform.apply_patterns to `target` { each populate op }."""
    op = transform.ApplyPatternsOp(target)
    with ir.InsertionPoint(op.patterns):
        for add in populate:
            add()


def canonicalize() -> object:
    return transform.ApplyCanonicalizationPatternsOp()


def build_script(emit: Emit) -> tuple[ir.Module, ir.Operation]:
    """A transform module whose entry sequence hands `emit` the kernel function handle."""
    tmod = ir.Module.create()
    tmod.operation.attributes["transform.with_named_sequence"] = ir.UnitAttr.get()
    any_op = transform.AnyOpType.get()
    with ir.InsertionPoint(tmod.body):
        seq = transform.NamedSequenceOp("__transform_main", [any_op], [],
                                        arg_attrs=[{"transform.readonly": ir.UnitAttr.get()}])
        with ir.InsertionPoint(seq.body):
            emit(match_kernel(seq.bodyTarget))
            transform.YieldOp([])
    return tmod, seq


def run_script(payload: ir.Module, emit: Emit) -> str:
    """Apply the script to `payload` in place; returns the script text (for stage dumps)."""
    with payload.context, ir.Location.unknown():
        tmod, seq = build_script(emit)
        try:
            interpreter.apply_named_sequence(payload.operation, seq, tmod)
        except ir.MLIRError as exc:
            raise StepFailed(_diagnostics(exc)) from None
    return str(tmod)


def _diagnostics(exc: ir.MLIRError) -> str:
    notes = [d.message for d in getattr(exc, "error_diagnostics", [])]
    return "; ".join(notes) or str(exc)
