"""A sweepable step in one module, as a user would add one: `UKL_PLUGINS=tests.runner.knob_plugin`.

`canonicalize` runs upstream canonicalization on the lowered kernel; its knob switches it on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlir import ir

from transforms import ir_query as q
from transforms.errors import StepFailed
from transforms.knobs import Knob, Point
from transforms.plan import StepContext
from transforms.script import apply_patterns, canonicalize
from transforms.steps import Step, register_step


@register_step
@dataclass(frozen=True)
class Canonicalize(Step):
    kind: ClassVar[str] = "canonicalize"
    needs: ClassVar[frozenset[str]] = frozenset({"lowered"})
    knobs: ClassVar[tuple[Knob, ...]] = (Knob("canonicalize", False, (False, True), off=False),)
    sweep_rank: ClassVar[int | None] = 130

    @classmethod
    def name_fragment(cls, p: Point) -> str | None:
        return "canon"

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        apply_patterns(kernel, canonicalize)

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if q.ops_named(kernel, "vector.contract"):
            raise StepFailed("canonicalize: a vector.contract reappeared")
