"""Sweep knobs, each declared once beside what it controls.

A step declares the knobs that set its fields (`Step.knobs`); the kernel, the vector width and
the LLVM options declare theirs here. Everything a sweep needs derives from these declarations:
[space] validation, normalisation (a knob that does not apply to a point is reset, so equivalent
points build one strategy), the generated strategy and its name, the reverse mapping a report
reads off a stored strategy, and which knobs the report plots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kernels_mlir.spec import DTYPES, MAX_KC, MAX_MR, MAX_NR

from .errors import StrategyError
from .llvm_options import FAST_MATH, OPT_LEVELS, LLVMOptions

Point = dict[str, Any]


def _always(point: Point) -> bool:
    return True


@dataclass(frozen=True)
class Knob:
    name: str
    default: Any
    #: The allowed values, or None for integers in [minimum, maximum].
    choices: tuple[Any, ...] | None = None
    minimum: int = 1
    maximum: int = 1 << 16
    #: Extra string values an integer knob takes (unroll's "total").
    words: tuple[str, ...] = ()
    #: The step field it sets; None for a knob that switches its step on (True) or off.
    field: str | None = None
    #: The value that leaves the step out of the strategy; None: the step is always there.
    off: Any = None
    #: False when, for this point, the knob changes nothing (it is then reset to its default).
    applies: Callable[[Point], bool] = _always
    #: Whether the report plots this knob's effect.
    effect: bool = True

    def check(self, value: Any, where: str = "space.") -> None:
        """StrategyError naming the knob (in the config section `where`) when `value` is outside its domain."""
        if self.choices is not None:
            ok = any(value == c and type(value) is type(c) for c in self.choices)
            domain = ", ".join(map(repr, self.choices))
        else:
            ok = value in self.words or (isinstance(value, int) and not isinstance(value, bool)
                                         and self.minimum <= value <= self.maximum)
            domain = f"integers from {self.minimum} to {self.maximum}" + "".join(f" or {w!r}" for w in self.words)
        if not ok:
            raise StrategyError(f"{where}{self.name}: {value!r} is not one of its values ({domain})")


#: Knobs of the kernel, its vector width and its LLVM options (the steps declare their own).
STRATEGY_KNOBS: tuple[Knob, ...] = (
    Knob("mr", 6, maximum=MAX_MR, effect=False),
    Knob("nr", 16, maximum=MAX_NR, effect=False),
    Knob("kc", 256, maximum=MAX_KC),
    # Sweeps generate FMA strategies; low-precision kernels (grouped panels) are written as configs.
    Knob("dtype", "f32", tuple(name for name, d in DTYPES.items() if d.groups == (1,))),
    Knob("vector_bits", None, (None, 128, 256, 512)),
    Knob("opt", LLVMOptions().opt, OPT_LEVELS),
    Knob("codegen_opt", LLVMOptions().codegen_opt, (0, 1, 2, 3)),
    Knob("machine_scheduler", LLVMOptions().machine_scheduler, (None, True, False)),
    Knob("fast_math", LLVMOptions().fast_math, FAST_MATH),
)


def strategy_name(p: Point, step_fragments: list[str]) -> str:
    """A generated strategy's name: the tile, each step's fragment, then the LLVM and width knobs."""
    parts = [f"{p['mr']}x{p['nr']}x{p['kc']}", p["dtype"], *step_fragments]
    parts.append(p["opt"] + ("" if p["codegen_opt"] == LLVMOptions().codegen_opt else f"cg{p['codegen_opt']}"))
    parts += [f"misched-{'on' if p['machine_scheduler'] else 'off'}"] if p["machine_scheduler"] is not None else []
    parts += [f"fm-{p['fast_math']}"] if p["fast_math"] != LLVMOptions().fast_math else []
    parts += [f"v{p['vector_bits']}"] if p["vector_bits"] is not None else []
    return "-".join(parts)
