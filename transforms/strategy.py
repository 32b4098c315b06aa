"""A strategy: the kernel it builds, the ordered steps that rewrite it, and the LLVM knobs.

Immutable and serializable; its hash identifies the generated code (the name does not count),
so a result store can tell whether a strategy was already measured.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from kernels_mlir.spec import KernelSpec, SpecError

from .errors import StepFailed, StrategyError
from .llvm_options import LLVMOptions
from .plan import Plan
from .steps import (FACT_HINTS, HoistAccumulators, LowerContraction, LowerTransfers, Step, TileK, Vectorize,
                    step_from_config)

#: The steps that take the contraction to register-resident broadcast+FMA code.
REGISTER_RESIDENT_STEPS: tuple[Step, ...] = (
    TileK(1), Vectorize(), HoistAccumulators(), LowerContraction("outerproduct"), LowerTransfers())


def default_steps(kernel: KernelSpec) -> tuple[Step, ...]:
    """REGISTER_RESIDENT_STEPS, as they apply to `kernel`: an SME kernel keeps C's 2-D transfers (they
    become ZA tile loads and stores) and steps k by the outer products one fused instruction takes."""
    if kernel.scalable != "sme":
        return REGISTER_RESIDENT_STEPS
    return (TileK(kernel.outer_product_ways), Vectorize(), HoistAccumulators(), LowerContraction("outerproduct"))


def strategy_hash(data: dict[str, Any]) -> str:
    """A strategy's identity from its JSON form: sha256 of the canonical JSON, name excluded. Stable
    across runs and machines; computed without building the strategy (its steps need not be known)."""
    body = {k: v for k, v in data.items() if k != "name"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Strategy:
    name: str
    kernel: KernelSpec
    steps: tuple[Step, ...] = REGISTER_RESIDENT_STEPS
    llvm: LLVMOptions = field(default_factory=LLVMOptions)
    #: Vector width the kernel is built for (like compilers' prefer-vector-width); None: the
    #: target's widest. Which widths a target has is checked against the target table. LLVM
    #: splits wider vectors down to 256 bits on x86 by itself; narrower needs the legalize step.
    vector_bits: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        bits = self.vector_bits
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits < 64
                                 or bits & (bits - 1)):
            raise StrategyError(f"vector_bits: must be a power of two number of bits (128, 256, 512), got {bits!r}")
        self.validate_for(lanes=None)

    def validate_for(self, lanes: int | None) -> None:
        """Walk the steps over a Plan; `lanes` (the target's native width) enables target checks."""
        plan = Plan(self.kernel, lanes=lanes)
        scalable = self.kernel.scalable
        for index, step in enumerate(self.steps):
            where = f"steps[{index}] ({step.kind})"
            if scalable is not None and scalable not in step.scalable_kinds:
                why = f": {step.scalable_why}" if step.scalable_why else ""
                raise StrategyError(f"{where}: does not apply to an {scalable.upper()} kernel{why}")
            missing = sorted(step.needs - plan.facts)
            if missing:
                raise StrategyError(f"{where}: needs {FACT_HINTS[missing[0]]}")
            conflict = sorted(step.not_after & set(plan.applied))
            if conflict:
                raise StrategyError(f"{where}: cannot come after '{conflict[0]}'")
            try:
                step.validate(plan)
            except StrategyError as exc:
                raise StrategyError(f"{where}.{exc}") from None
            plan = step.after(plan)

    def to_dict(self) -> dict[str, Any]:
        """`vector_bits` is left out when unset, so strategies written before it keep their hash."""
        data = {"name": self.name, "kernel": self.kernel.to_dict(),
                "steps": [s.to_dict() for s in self.steps], "llvm": self.llvm.to_dict()}
        if self.vector_bits is not None:
            data["vector_bits"] = self.vector_bits
        return data

    @property
    def instruction(self) -> str | None:
        """The dot-product instruction its kernel is built on (None: FMAs)."""
        return next((step.instruction for step in self.steps if step.kind == "dot_product"), None)

    @property
    def hash(self) -> str:
        return strategy_hash(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Any, where: str = "strategy") -> "Strategy":
        """Inverse of to_dict (also the form stored in the results database and in reproducers). The
        JSON is distrusted: a missing or extra field, or one of the wrong type, is a StrategyError naming it."""
        if not isinstance(raw, dict):
            raise StrategyError(f"{where}: must be an object, got {type(raw).__name__}")
        for key in raw:
            if key not in _FIELDS:
                raise StrategyError(f"{where}.{key}: unknown field (fields: {', '.join(_FIELDS)})")
        for key in ("name", "kernel"):
            if key not in raw:
                raise StrategyError(f"{where}.{key}: missing")
        if not isinstance(raw["name"], str):
            raise StrategyError(f"{where}.name: must be a string, got {raw['name']!r}")
        kernel, steps = raw["kernel"], raw.get("steps", [])
        if not isinstance(kernel, dict):
            raise StrategyError(f"{where}.kernel: must be an object, got {kernel!r}")
        if not isinstance(steps, list):
            raise StrategyError(f"{where}.steps: must be a list, got {steps!r}")
        try:
            kernel = KernelSpec(**kernel)
        except SpecError as exc:
            raise StrategyError(f"{where}.kernel.{exc}") from None
        except TypeError as exc:
            raise StrategyError(f"{where}.kernel: {exc}") from None
        steps = tuple(step_from_config(s, f"{where}.steps[{i}]") for i, s in enumerate(steps))
        llvm = LLVMOptions.from_config(raw.get("llvm", {}), f"{where}.llvm")
        return cls(raw["name"], kernel, steps, llvm, raw.get("vector_bits"))


#: The fields of a strategy's JSON form.
_FIELDS = ("name", "kernel", "steps", "llvm", "vector_bits")


__all__ = ["Strategy", "StrategyError", "StepFailed", "REGISTER_RESIDENT_STEPS", "default_steps"]
