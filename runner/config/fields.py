"""Reading one field of a config table: typed, known keys only, plain names; each problem one line.

Shared by the experiment reader and every problem kind's section reader (runner.kinds), so a kind
validates its own section with the same words as the rest of the config.
"""
from __future__ import annotations

import difflib
import os
import re
from typing import Any

from transforms.errors import StrategyError

from runner.measure.environment import available_memory

#: Shapes a config may list (each is compiled, verified and timed).
MAX_SHAPES = 10_000


def known(table: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            hint = closest(key, allowed)
            raise StrategyError(f"{prefix}{key}: unknown key" + (f" (did you mean {hint!r}?)" if hint else
                                                                  f" (allowed: {', '.join(sorted(allowed))})"))


def closest(key: str, allowed: set[str]) -> str | None:
    matches = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def table_of(raw: dict[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise StrategyError(f"{prefix}{key}: must be a table, got {value!r}")
    return value


def typed(table: dict[str, Any], key: str, types: type | tuple[type, ...], prefix: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise StrategyError(f"{prefix}{key}: must be {names}, got {value!r}")
    return value


def int_list(table: dict[str, Any], key: str, prefix: str) -> list[int]:
    values = table.get(key)
    if not isinstance(values, list) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise StrategyError(f"{prefix}{key}: must be a non-empty list of positive integers, got {values!r}")
    return values


#: Names become file and folder names (stage dumps, plots) and table cells: plain ones only.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]{0,99}")


def plain_name(name: str, where: str) -> str:
    if not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise StrategyError(f"{where}: must be a plain name (letters, digits and . _ + @ = -, at most 100, "
                            f"starting with a letter or digit), got {name[:60]!r}")
    return name


def check_threads(threads: int, where: str) -> None:
    """A thread count this machine can run: 1 up to the CPUs this process may use."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not 1 <= threads <= cpus:
        raise StrategyError(f"{where}: must be from 1 to {cpus} (the CPUs this process may use), got {threads}")


def fits_in_memory(bytes_needed: int, where: str) -> None:
    """A problem must leave half the machine's available memory free: refused before allocating."""
    available = available_memory()
    if available is not None and bytes_needed > available // 2:
        raise StrategyError(f"{where}: needs {bytes_needed / 2**30:.1f} GiB for its operands and buffers; "
                            f"this machine has {available / 2**30:.1f} GiB available")
