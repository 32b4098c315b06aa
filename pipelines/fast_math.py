"""The fast_math LLVM knob, applied as MLIR fastmath flags so the LLVM IR carries them."""
from __future__ import annotations

from mlir import ir

from transforms import ir_query as q

#: arith ops that carry a fastmath attribute and appear in micro-kernels.
_FLOAT_OPS = {"arith.addf", "arith.subf", "arith.mulf", "arith.divf", "arith.negf"}


def apply_fast_math(module: ir.Module, flags: str) -> int:
    """Set `fastmath<flags>` on every float arith op; returns how many ops changed."""
    if flags == "none":
        return 0
    attr = ir.Attribute.parse(f"#arith.fastmath<{flags}>", module.context)
    changed = 0
    for fn in module.body.operations:
        for op in q.walk(fn.operation):
            if op.name in _FLOAT_OPS:
                op.attributes["fastmath"] = attr
                changed += 1
    return changed
