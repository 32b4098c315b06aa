"""Kind `microkernel`: the strategy's own kernel, C[mr x nr] += Ap^T . Bp on packed panels."""
from __future__ import annotations

from typing import Any

from kernels_mlir.spec import KernelSpec, SpecError
from pipelines.compile import compile_strategy
from pipelines.model import NoModel, blocking, register_tile
from pipelines.targets import TARGETS, Target

#: Vector lengths a scalable kernel is verified at when its target does not fix one (an architecture level).
SCALABLE_CHECK_BITS = (128, 256, 512)
from transforms.errors import StrategyError
from transforms.knobs import Point
from transforms.strategy import Strategy

from runner.kinds.base import Compiled, ProblemKind, register


class MicrokernelKind(ProblemKind):
    name = "microkernel"
    plots = ("fraction", "tile_heatmap", "gflops_vs_kc", "knob_effects", "optuna")

    def problems(self, settings: None, strategy: Strategy, point: Point | None = None) -> list[KernelSpec]:
        return [strategy.kernel]

    def vector_lengths(self, problem: KernelSpec, target: Target) -> tuple[int | None, ...]:
        """A scalable kernel's one binary runs at its core's length, or on an architecture level that fixes
        none at each of SCALABLE_CHECK_BITS."""
        if problem.scalable is None:
            return (None,)
        fixed = target.scalable_bits(problem.scalable)
        return SCALABLE_CHECK_BITS if fixed is None else (fixed,)

    def at_length(self, problem: KernelSpec, bits: int | None) -> KernelSpec:
        if problem.scalable is not None and bits is None:
            raise ValueError(f"a {problem.scalable} kernel's shape depends on the vector length: give one")
        return problem.at_length(bits)

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

    def report_summaries(self, records: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]]]]:
        """The analytical model's kernel beside the best measured, per core, dtype and width: the model's
        tile and kc, the best measured kernel of that tile, the best of all, and the model's regret."""
        rows = []
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in records:  # best first
            kernel = (r.get("strategy") or {}).get("kernel") or {}
            if r.get("gflops") and r.get("target_cpu") and kernel.get("dtype") in ("f32", "f64"):
                groups.setdefault((r["target_cpu"], kernel["dtype"], r.get("vector_bits")), []).append(r)
        for (cpu, dtype, bits), found in groups.items():
            row = next((t for t in TARGETS.values() if t.cpu == cpu and t.fma is not None), None)
            if row is None or bits not in row.widths:
                continue
            try:
                tile = register_tile(row, dtype, bits)
                kc = blocking(row, dtype, tile.mr, tile.nr).kc
            except NoModel:
                continue
            best = found[0]
            ours = next((r for r in found if (r["strategy"]["kernel"]["mr"], r["strategy"]["kernel"]["nr"]) ==
                         (tile.mr, tile.nr)), None)
            regret = "-" if ours is None else f"{100 * (1 - ours['gflops'] / best['gflops']):.1f}%"
            rows.append([cpu, dtype, str(bits), f"{tile.mr}x{tile.nr}x{kc}",
                         "not measured" if ours is None else f"{ours['name']}: {ours['gflops']:.2f}",
                         f"{best['name']}: {best['gflops']:.2f}", regret])
        headers = ["core", "dtype", "bits", "model's kernel", "best of its tile (GFLOP/s)", "best measured", "regret"]
        return [("The analytical model's kernel beside the best measured", headers, rows)] if rows else []

    def build(self, strategy: Strategy, problem: KernelSpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        if problem != strategy.kernel:
            raise StrategyError(f"the strategy builds a {strategy.kernel} kernel, the problem is {problem}")
        compiled = compile_strategy(strategy, target, jit=jit, stages=stages)
        return Compiled(compiled.code, compiled.vector_bits, compiled.stages)


MICROKERNEL = register(MicrokernelKind())
