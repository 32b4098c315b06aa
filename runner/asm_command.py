"""`ukl asm`: every compilation stage written to disk, and the hot loop annotated."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from kernels_mlir.names import KERNEL
from pipelines.asm_analysis import annotate, hot_loop
from pipelines.compile import Compiled, compile_strategy
from pipelines.targets import Target
from transforms.strategy import Strategy

from .config import ConfigError


def select(strategies: Iterable[Strategy], name: str | None) -> list[Strategy]:
    chosen = [s for s in strategies if name is None or s.name == name]
    if not chosen:
        raise ConfigError(f"--strategy: no strategy named {name!r} (known: {', '.join(s.name for s in strategies)})")
    return chosen


def header(strategy: Strategy, target: Target) -> dict:
    """The fields that name what a record is about."""
    return {"name": strategy.name, "strategy_hash": strategy.hash, "target": target.name,
            "cpu": strategy.llvm.cpu or target.cpu}


def annotated_loop(compiled: Compiled) -> dict:
    loop = hot_loop(compiled.code.assembly, KERNEL)
    return annotate(loop, compiled.target.vector_registers, compiled.target.is_aarch64).to_json()


def inspect(strategies: list[Strategy], target: Target, out: Path | None) -> Iterator[dict]:
    """Compile each strategy for `target` (no JIT), dump its stages under out/<name>/, annotate."""
    for strategy in strategies:
        compiled = compile_strategy(strategy, target, jit=False, keep_stages=out is not None)
        if out is not None:
            folder = out / strategy.name
            folder.mkdir(parents=True, exist_ok=True)
            for stage, text in compiled.stages.items():
                (folder / stage).write_text(text)
        yield {**header(strategy, target), **annotated_loop(compiled),
               "stages": None if out is None else str(out / strategy.name)}
