"""Compiled kernels kept by what they compute and how: a runtime's JIT cache, whose lookup is part
of what one call costs (runner.studies.calls measures it)."""
from __future__ import annotations

from typing import Hashable

from pipelines.codegen import MachineCode
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.kinds import kind_of


class JitCache:
    """Machine code by (problem, strategy hash): the problem is frozen and holds the shape and dtype,
    the strategy is named by its hash, computed once by the caller (as a runtime computes its
    dispatch key once, not per call). A miss compiles for `target` and loads the code here."""

    def __init__(self, target: Target):
        self.target = target
        self._code: dict[tuple[Hashable, str], MachineCode] = {}

    def get(self, problem: Hashable, strategy_hash: str) -> MachineCode | None:
        """The cached code, or None (a miss)."""
        return self._code.get((problem, strategy_hash))

    def compile(self, problem: Hashable, strategy: Strategy) -> MachineCode:
        """Compile and keep (what a miss costs: building the IR, LLVM, loading the object)."""
        code = kind_of(problem).build(strategy, problem, self.target, True, None).code
        self._code[(problem, strategy.hash)] = code
        return code
