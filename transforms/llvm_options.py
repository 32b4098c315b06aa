"""LLVM-side knobs of a strategy: how hard `opt` works and how the backend generates code."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import StrategyError

#: `opt` levels; "none" runs no IR pass at all (LLVM as a pure code generator).
OPT_LEVELS = ("none", "O1", "O2", "O3")
#: Pre-register-allocation SelectionDAG schedulers (`source` keeps the IR order).
PRE_RA_SCHEDULERS = ("default", "source", "list-burr", "list-hybrid", "list-ilp", "fast", "linearize")
#: MLIR fast-math flags put on every floating-point arith op of the kernel before lowering.
FAST_MATH = ("none", "contract", "fast")


@dataclass(frozen=True)
class LLVMOptions:
    opt: str = "O1"
    codegen_opt: int = 3
    #: CPU / feature overrides; None means "the target's own" (host: detected).
    cpu: str | None = None
    features: str | None = None
    #: Backend scheduling knobs; None leaves LLVM's choice for the target.
    machine_scheduler: bool | None = None
    pre_ra_scheduler: str | None = None
    post_ra_scheduler: bool | None = None
    fast_math: str = "none"
    #: AArch64: whether the load/store optimizer pairs loads into ldp (None: LLVM's default, on).
    #: Neoverse V2 dispatches `ldp q` as 3 micro-ops and two `ldr q` as 2, which matters in a
    #: dispatch-bound kernel.
    load_pairs: bool | None = None

    def __post_init__(self) -> None:
        if self.opt not in OPT_LEVELS:
            raise StrategyError(f"llvm.opt: must be one of {list(OPT_LEVELS)}, got {self.opt!r}")
        if isinstance(self.codegen_opt, bool) or self.codegen_opt not in (0, 1, 2, 3):
            raise StrategyError(f"llvm.codegen_opt: must be 0, 1, 2 or 3, got {self.codegen_opt!r}")
        for name in ("cpu", "features"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise StrategyError(f"llvm.{name}: must be a string, got {value!r}")
        for name in ("machine_scheduler", "post_ra_scheduler", "load_pairs"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise StrategyError(f"llvm.{name}: must be true or false, got {value!r}")
        if self.pre_ra_scheduler is not None and self.pre_ra_scheduler not in PRE_RA_SCHEDULERS:
            raise StrategyError(f"llvm.pre_ra_scheduler: must be one of {list(PRE_RA_SCHEDULERS)}, "
                                f"got {self.pre_ra_scheduler!r}")
        if self.fast_math not in FAST_MATH:
            raise StrategyError(f"llvm.fast_math: must be one of {list(FAST_MATH)}, got {self.fast_math!r}")

    def backend_flags(self) -> list[str]:
        """cl::opt flags for the backend. They are process-global and sticky in LLVM (a flag once
        given overrides the target's default for the rest of the process), so code generation
        with any of them runs in a separate process."""
        flags = []
        if self.machine_scheduler is not None:
            flags.append(f"-enable-misched={str(self.machine_scheduler).lower()}")
        if self.pre_ra_scheduler is not None:
            flags.append(f"-pre-RA-sched={self.pre_ra_scheduler}")
        if self.post_ra_scheduler is not None:
            flags.append(f"-enable-post-misched={str(self.post_ra_scheduler).lower()}")
        if self.load_pairs is not None:
            flags.append(f"-aarch64-enable-ldst-opt={str(self.load_pairs).lower()}")
        return flags

    @classmethod
    def from_config(cls, raw: Any, where: str) -> "LLVMOptions":
        if not isinstance(raw, dict):
            raise StrategyError(f"{where}: must be a table, got {raw!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in known:
                raise StrategyError(f"{where}.{key}: unknown LLVM option (known: {', '.join(sorted(known))})")
        try:
            return cls(**raw)
        except StrategyError as exc:
            raise StrategyError(f"{where}: {exc}".replace(f"{where}: llvm.", f"{where}.")) from None

    def to_dict(self) -> dict[str, Any]:
        """opt levels always; other knobs only when set, so adding a knob keeps existing hashes."""
        always = ("opt", "codegen_opt")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in always or getattr(self, f.name) not in (None, f.default)}
