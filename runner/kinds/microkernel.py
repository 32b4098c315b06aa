"""Kind `microkernel`: the strategy's own kernel, C[mr x nr] += Ap^T . Bp on packed panels."""
from __future__ import annotations

from typing import Any

from kernels_mlir.spec import KernelSpec, SpecError
from pipelines.compile import compile_strategy
from pipelines.targets import Target
from transforms.errors import StrategyError
from transforms.knobs import Point
from transforms.strategy import Strategy

from runner.kinds.base import Compiled, ProblemKind, register


class MicrokernelKind(ProblemKind):
    name = "microkernel"
    plots = ("fraction", "tile_heatmap", "gflops_vs_kc", "knob_effects", "optuna")

    def problems(self, settings: None, strategy: Strategy, point: Point | None = None) -> list[KernelSpec]:
        return [strategy.kernel]

    def to_dict(self, problem: KernelSpec) -> dict[str, Any]:
        return problem.to_dict()

    def from_dict(self, data: dict[str, Any]) -> KernelSpec:
        try:
            return KernelSpec(**data)
        except TypeError as exc:
            raise SpecError(f"not a micro-kernel's fields: {exc}") from None

    def key(self, strategy: Strategy, problem: KernelSpec) -> str:
        """The strategy's hash: it names its kernel."""
        return strategy.hash

    def identity(self, strategy: Strategy, problem: KernelSpec) -> dict[str, Any]:
        """Nothing: the strategy (its hash and kernel) says it all."""
        return {}

    def from_record(self, record: dict[str, Any]) -> KernelSpec:
        return self.from_dict(record["strategy"]["kernel"])

    def leader_group(self, problem: KernelSpec) -> str:
        """Every micro-kernel competes with every other (they are what the sweep compares)."""
        return ""

    def report_group(self, record: dict[str, Any]) -> str:
        return ""

    def build(self, strategy: Strategy, problem: KernelSpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        if problem != strategy.kernel:
            raise StrategyError(f"the strategy builds a {strategy.kernel} kernel, the problem is {problem}")
        compiled = compile_strategy(strategy, target, jit=jit, stages=stages)
        return Compiled(compiled.code, compiled.vector_bits, compiled.stages)


MICROKERNEL = register(MicrokernelKind())
