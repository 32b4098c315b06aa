"""Apply a strategy's steps to a payload module, optionally reporting every intermediate stage."""
from __future__ import annotations

from typing import Callable

from mlir import ir

from .errors import StepFailed
from .plan import Plan, StepContext
from .strategy import Strategy

#: Called after each step with (stage name, module, transform script used).
StageHook = Callable[[str, ir.Module, str], None]


def apply_strategy(module: ir.Module, strategy: Strategy, lanes: int, on_stage: StageHook | None = None) -> None:
    """`lanes`: the target's native vector lanes for the kernel's dtype (used by legalize)."""
    plan = Plan(strategy.kernel, lanes=lanes)
    for index, step in enumerate(strategy.steps, start=1):
        script = step.apply(module, StepContext(strategy.kernel, lanes, plan.k_per_iteration))
        plan = step.after(plan)
        try:
            module.operation.verify()
        except ir.MLIRError as exc:
            raise StepFailed(f"{step.kind}: left IR that does not verify: {' '.join(str(exc).split())[:300]}") from None
        if on_stage is not None:
            on_stage(f"{index:02d}-{step.kind}", module, script)
