"""This machine's data caches, from sysfs: what the analytical model blocks for on the host."""
from __future__ import annotations

import glob
import os


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    return int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)


def _cpus(listing: str) -> int:
    """How many CPUs a sysfs list ("0-3,8") names."""
    count = 0
    for part in filter(None, listing.strip().split(",")):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def cache_levels(cpu: int = 0) -> tuple[tuple[str, int, int], ...]:
    """(name, bytes, CPUs sharing it) of each data or unified cache of `cpu`, L1d first; empty where the
    system does not say."""
    found = {}
    for index in sorted(glob.glob(f"/sys/devices/system/cpu/cpu{cpu}/cache/index*")):
        try:
            read = lambda name: open(os.path.join(index, name)).read().strip()  # noqa: E731
            level, kind, size = read("level"), read("type"), _size(read("size"))
            sharing = _cpus(read("shared_cpu_list")) if os.path.exists(os.path.join(index, "shared_cpu_list")) else 1
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified"):
            found[f"L{level}{'d' if kind == 'Data' else ''}"] = (size, max(1, sharing))
    return tuple((name, size, sharing) for name, (size, sharing) in sorted(found.items(), key=lambda i: i[0][1]))


def per_core(levels: tuple[tuple[str, int, int], ...]) -> tuple[int | None, int | None, int | None]:
    """(L1d, L2, L3) bytes per core: a shared level divided among the CPUs that share it (in a VM, the
    ones it shows)."""
    by_level = {name[:2]: size // sharing for name, size, sharing in levels}
    return by_level.get("L1"), by_level.get("L2"), by_level.get("L3")
