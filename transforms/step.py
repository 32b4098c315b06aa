"""The step seam: the base class every strategy step derives from, the registry of step types, how a
step is read from a config (or stored JSON), and plugin loading.

A step declares the IR facts it needs and changes (so a strategy in an impossible order is
rejected before compiling), applies itself with upstream transform-dialect ops where upstream
has them (Python rewrites otherwise), and then checks that the IR has the property it promises:
upstream transforms can fail silently. The built-in steps live in modules by family
(transforms.steps imports them all); a plugin module adds more with register_step.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from mlir import ir
from mlir.dialects.transform import loop

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .knobs import Knob, Point
from .plan import Plan, StepContext
from .script import run_script


#: IR facts a step can need or change, with the hint shown when one is missing.
FACT_HINTS = {
    "linalg": "the linalg contraction (before 'vectorize')",
    "k_loop": "a k loop ('tile_k' before it, and no 'unroll_k' with factor \"total\")",
    "vector": "vectorized code ('vectorize' before it)",
    "contract": "a vector.contract ('vectorize' before it, 'lower_contraction' after it)",
    "lowered": "1-D vector code ('lower_contraction' and 'lower_transfers' before it)",
}


@dataclass(frozen=True)
class Step:
    """Base of all steps. Subclasses set `kind` and the fact sets, and implement `emit` or `rewrite`."""

    kind: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    adds: ClassVar[frozenset[str]] = frozenset()
    removes: ClassVar[frozenset[str]] = frozenset()
    #: Steps that, once applied, make this one impossible (e.g. hoisting after unrolling).
    not_after: ClassVar[frozenset[str]] = frozenset()
    #: Allowed values of string fields.
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Sweep knobs setting this step (transforms.knobs); a knob without a field switches the step.
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: Place in a strategy generated from a sweep point (steps in rank order); None: never generated.
    sweep_rank: ClassVar[int | None] = None
    #: Scalable kernels ("sve", "sme") this step builds right (each checked under qemu); it refuses the others,
    #: saying why in `scalable_why` where there is more to say than that.
    scalable_kinds: ClassVar[frozenset[str]] = frozenset()
    scalable_why: ClassVar[str] = ""

    @classmethod
    def from_point(cls, p: Point) -> "Step | None":
        """This step as a sweep point sets it, or None when the point leaves it out."""
        if cls.sweep_rank is None or any(k.off is not None and p[k.name] == k.off for k in cls.knobs):
            return None
        return cls(**{k.field: p[k.name] for k in cls.knobs if k.field is not None})

    @classmethod
    def point_of(cls, step: dict[str, Any] | None) -> Point:
        """The knob values a stored step (its JSON, or None when absent) stands for: for reports."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        values = {}
        for k in cls.knobs:
            if step is None:
                values[k.name] = k.off if k.off is not None else k.default
            else:
                values[k.name] = True if k.field is None else step.get(k.field, defaults[k.field])
        return values

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        """What this step adds to a generated strategy's name (None: nothing)."""
        return None

    @classmethod
    def accumulator_copies(cls, p: Point) -> int:
        """How many registers each C vector takes once this step is applied (for register budgets)."""
        return 1

    def validate(self, plan: Plan) -> None:
        """Reject field values that cannot work at this point; the message starts with the field."""

    def after(self, plan: Plan) -> Plan:
        return plan.with_(facts=(plan.facts - self.removes) | self.adds, applied=plan.applied + (self.kind,))

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        """Rewrite `module` in place and check the promise; returns what was run (for stage dumps)."""
        script = run_script(module, lambda kernel: self.emit(kernel, ctx))
        self.check(q.kernel_function(module), ctx)
        return script

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        raise NotImplementedError

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        """Raise StepFailed when the IR lacks the property this step promises."""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.kind, **dataclasses.asdict(self)}


class PythonRewrite(Step):
    """A step implemented as a Python IR rewrite of the kernel function."""

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        raise NotImplementedError

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        with module.context, ir.Location.unknown():
            summary = self.rewrite(q.kernel_function(module), ctx)
        self.check(q.kernel_function(module), ctx)
        return f"// python rewrite {self.kind}: {summary}"


def mark_lowered(plan: Plan) -> Plan:
    """Contractions and transfers both lowered, in either order: the IR is plain 1-D vector code."""
    if "contract" not in plan.facts and "transfers_lowered" in plan.facts:
        return plan.with_(facts=plan.facts | {"lowered"})
    return plan


def single_k_loop(kernel: ir.Operation) -> ir.Operation:
    loops = q.ops_named(kernel, "scf.for")
    if len(loops) != 1:
        raise StepFailed(f"expected one k loop, found {len(loops)}")
    return loops[0]


#: Every known step type by kind (built-ins register as their modules are imported).
STEP_TYPES: dict[str, type[Step]] = {}


#: Comma-separated modules to import before reading strategies; they add steps with register_step.
PLUGINS_ENV = "UKL_PLUGINS"


def register_step(cls: type[Step]) -> type[Step]:
    """Make a step type known to configs and to sweep workers (usable as a class decorator)."""
    STEP_TYPES[cls.kind] = cls
    return cls


#: A plugin is named as Python imports it: dotted identifiers, never a path.
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def load_plugins() -> None:
    """Import the modules named in $UKL_PLUGINS: experiment-specific steps (and problem kinds) live outside
    this package. A name that is not a module's, or a module that fails to import, is one StrategyError."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        if not _MODULE_NAME.fullmatch(name):
            raise StrategyError(f"{PLUGINS_ENV}: {name[:80]!r} is not a module name (dotted Python identifiers, "
                                "as `import` takes them; not a path)")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StrategyError(f"{PLUGINS_ENV}: cannot import {name!r}: {exc}") from None
        except Exception as exc:  # the plugin's own code failed while importing: its error, in one line
            raise StrategyError(f"{PLUGINS_ENV}: importing {name!r} failed: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:300]}") from None


def step_from_config(raw: Any, where: str) -> Step:
    """A step from its TOML/JSON form: "kind" or {step = "kind", field = value, ...}."""
    if isinstance(raw, str):
        raw = {"step": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("step"), str):
        raise StrategyError(f"{where}: a step is a name or a table with a 'step' key, got {raw!r}")
    fields = dict(raw)
    kind = fields.pop("step")
    cls = STEP_TYPES.get(kind)
    if cls is None:
        raise StrategyError(f"{where}: unknown step {kind!r} (known: {', '.join(sorted(STEP_TYPES))}; a plugin's "
                            f"step needs its module named in ${PLUGINS_ENV})")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name, value in fields.items():
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise StrategyError(f"{where}.{name}: unknown field of step {kind!r} (fields: {allowed})")
        _check_type(value, hints[name], f"{where}.{name}")
        allowed_values = cls.choices.get(name)
        if allowed_values and value not in allowed_values:
            raise StrategyError(f"{where}.{name}: must be one of {list(allowed_values)}, got {value!r}")
    return cls(**fields)


def _check_type(value: Any, annotation: Any, where: str) -> None:
    accepted = typing.get_args(annotation) or (annotation,)
    ok = not (isinstance(value, bool) and bool not in accepted) and isinstance(value, accepted)
    if not ok:
        names = " or ".join(t.__name__ for t in accepted)
        raise StrategyError(f"{where}: must be {names}, got {value!r}")


# Steps in modules of their own register themselves when imported (after the registry exists).
