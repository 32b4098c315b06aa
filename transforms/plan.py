"""What validation and application know about a strategy besides the IR itself."""
from __future__ import annotations

from dataclasses import dataclass, replace

from kernels_mlir.spec import DTYPES, KernelSpec

#: The narrowest vector every target has (SSE, NEON).
MIN_VECTOR_BITS = 128


@dataclass(frozen=True)
class Plan:
    """The state of the kernel after some steps, known without building IR.

    Validating a strategy walks its steps over a Plan, so an impossible combination is
    rejected with a message before anything compiles.
    """

    spec: KernelSpec
    facts: frozenset[str] = frozenset({"linalg"})
    applied: tuple[str, ...] = ()
    #: k values one iteration of the k loop covers (tile size x unroll factor).
    k_per_iteration: int = 1
    #: Vector lanes for spec.dtype at the strategy's width on the target; None while the target is unknown.
    lanes: int | None = None
    #: (rows, cols) of the pieces 'tile_registers' cut the contraction into; None before it.
    register_tile: tuple[int, int] | None = None

    @property
    def bits(self) -> int | None:
        """The strategy's vector width on the target (None while the target is unknown)."""
        return None if self.lanes is None else self.lanes * DTYPES[self.spec.dtype].bits

    @property
    def k_trips(self) -> int:
        return self.spec.kc // self.k_per_iteration

    def with_(self, **changes) -> "Plan":
        return replace(self, **changes)


@dataclass(frozen=True)
class StepContext:
    """What a step may need while rewriting: the kernel, the target's native lanes for its dtype, and the
    k values the contraction covers at this point (the scalable vectorizer needs every dimension's size)."""

    spec: KernelSpec
    lanes: int
    k_per_iteration: int = 1

    @property
    def bits(self) -> int:
        return self.lanes * DTYPES[self.spec.dtype].bits
