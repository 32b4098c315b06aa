"""LLVM-side knobs of a strategy: how hard `opt` works and how the backend generates code."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import StrategyError

#: `opt` levels; "none" runs no IR pass at all (LLVM as a pure code generator).
OPT_LEVELS = ("none", "O1", "O2", "O3")


@dataclass(frozen=True)
class LLVMOptions:
    opt: str = "O1"
    codegen_opt: int = 3
    #: CPU / feature overrides; None means "the target's own" (host: detected).
    cpu: str | None = None
    features: str | None = None

    def __post_init__(self) -> None:
        if self.opt not in OPT_LEVELS:
            raise StrategyError(f"llvm.opt: must be one of {list(OPT_LEVELS)}, got {self.opt!r}")
        if isinstance(self.codegen_opt, bool) or self.codegen_opt not in (0, 1, 2, 3):
            raise StrategyError(f"llvm.codegen_opt: must be 0, 1, 2 or 3, got {self.codegen_opt!r}")
        for name in ("cpu", "features"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise StrategyError(f"llvm.{name}: must be a string, got {value!r}")

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
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
