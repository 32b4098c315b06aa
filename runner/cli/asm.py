"""`ukl asm`: every compilation stage written to disk, and the hot loop annotated."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from kernels_mlir.names import KERNEL
from pipelines.asm_analysis import annotate, annotated_lines, hot_loop, streaming_switches
from pipelines.codegen import MachineCode
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.config.experiment import ConfigError
from runner import files
from runner.measure.lifecycle import Candidate, build_or_record
from runner.measure.record import Record


def select(strategies: Iterable[Strategy], name: str | None) -> list[Strategy]:
    chosen = [s for s in strategies if name is None or s.name == name]
    if not chosen:
        raise ConfigError(f"--strategy: no strategy named {name!r} (known: {', '.join(s.name for s in strategies)})")
    return chosen


def header(strategy: Strategy, target: Target) -> dict:
    """The fields that name what a record is about."""
    return {"name": strategy.name, "strategy_hash": strategy.hash, "target": target.name,
            "cpu": strategy.llvm.cpu or target.cpu}


def annotated_loop(code: MachineCode, target: Target, with_lines: bool = False, symbol: str = KERNEL) -> dict:
    """The hot loop's annotation (of `symbol`'s loops); with `with_lines`, also the loop itself, tagged
    (for `ukl asm`)."""
    loop = hot_loop(code.assembly, symbol)
    note = annotate(loop, target.vector_registers, target.is_aarch64).to_json()
    note["streaming_switches"] = streaming_switches(code.assembly, symbol) if target.is_aarch64 else 0
    return {**note, "loop": annotated_lines(loop, target.is_aarch64)} if with_lines else note


def inspect(strategies: list[Strategy], target: Target, out: Path | None) -> Iterator[dict]:
    """Compile each strategy for `target` (no JIT), dump its stages under out/<name>/, annotate."""
    for strategy in strategies:
        stages: dict[str, str] | None = {} if out is not None else None
        built = build_or_record(Candidate.microkernel(strategy, target), jit=False, stages=stages)
        if out is not None:  # as far as they got, when a step fails
            for stage, text in stages.items():
                files.write(out / strategy.name / stage, text)
        where = {"stages": None if out is None else str(out / strategy.name)}
        if isinstance(built, Record):
            yield {**header(strategy, target), "status": built.status, "error": built.error, **where}
            continue
        yield {**header(strategy, target), "status": "ok", **annotated_loop(built.code, target, with_lines=True), **where}
