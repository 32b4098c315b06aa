"""The JSON every `ukl` command prints with --json: one schema, versioned, one object per line.

The first line is a context header (tool and library versions, the host's CPU and features, the
target); every line has a `type` and the `schema`. `run`, `sweep` and `report` print one `result`
per candidate, with raw numbers (GFLOP/s, fractions, seconds) and full hashes, exactly as the store
keeps it, so a result reads the same from each of them (`report` ends with a `summary`). The other
commands print their own types: `inspection` (asm), `prediction` (mca), `comparison` (compare),
`crossover_point` and `boundary` (crossover), `peak`, `replay` (repro).
"""
from __future__ import annotations

import json
import math
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pipelines.targets import Target, host_target

from runner.measure.environment import host_cpu_model, versions

#: Bumped whenever a key is renamed or removed, or a value changes type or unit.
SCHEMA = "ukl/1"


def tool_version() -> str:
    try:
        return version("ukernel-lab")
    except PackageNotFoundError:
        return "unknown"


def context(command: str, target: Target | None) -> dict[str, Any]:
    """The header: what produced the lines that follow, on which machine, for which target."""
    host = host_target()
    return {"type": "context", "schema": SCHEMA, "command": command, "tool_version": tool_version(),
            "host_cpu": host_cpu_model(), "host_llvm_cpu": host.cpu, "host_row": host.row,
            "host_isa_cap": host.isa_cap, "host_features": sorted(host.enabled),
            "target": None if target is None else target.name,
            "target_label": None if target is None else target.label, "versions": versions()}


def line(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """One line of type `kind` carrying `data`."""
    return {"type": kind, "schema": SCHEMA, **data}


def result(data: dict[str, Any]) -> dict[str, Any]:
    """One result line: a record's JSON (Record.to_json, or the store's record_json)."""
    return line("result", data)


def strict(value: Any) -> Any:
    """`value` with every non-finite float (NaN, infinity: what a store may hold) as None, so the line is
    strict JSON that any reader accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(strict(line), allow_nan=False), flush=True)

