"""The measured datapath of a host the target table lacks, kept between processes beside the results
database the command writes to (never elsewhere: nothing is written outside the place the user named).

Measuring costs about a second per process that needs it (`ukl run` with "auto" sizes, every sweep
worker's first point, `ukl mca`); the file saves it. An entry is keyed by what identifies the core
to us: the CPU's model name, LLVM's name and features for it, and its caches, so a VM moved to
another host kind measures again. A damaged file is said in one line and measured over.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from pipelines.targets import Datapath, Target

#: The file, in the results database's directory.
FILE_NAME = "ukl-datapaths.json"
#: That directory, in the environment so that the command's worker processes (a sweep's) find it too.
DIRECTORY_ENV = "UKL_DATAPATH_DIR"


def use_directory(directory: Path | None) -> None:
    """Keep measured datapaths in `directory` (the results database's) from now on; None: in memory only."""
    if directory is None:
        os.environ.pop(DIRECTORY_ENV, None)
    else:
        os.environ[DIRECTORY_ENV] = str(directory)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("model name", "Processor", "CPU part")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def host_key(target: Target) -> str:
    """What identifies the core: model name, LLVM's cpu and features, caches."""
    text = json.dumps([_cpu_model(), target.cpu, target.features, list(target.caches)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _path() -> Path | None:
    directory = os.environ.get(DIRECTORY_ENV)
    return Path(directory) / FILE_NAME if directory else None


def _read(path: Path, quiet: bool = False) -> dict:
    """The file's entries; a missing file is empty, a damaged one is said (unless `quiet`) and treated as empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if not quiet:
            print(f"ukl: {path}: not a datapath cache ({exc}); measuring again", file=sys.stderr)
        return {}


def _datapath(value: object) -> Datapath:
    if not isinstance(value, dict) or set(value) != {"pipes", "bits_per_pipe", "latency"} or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value.values()):
        raise ValueError(f"not a datapath: {value!r}")
    return Datapath(value["pipes"], value["bits_per_pipe"], value["latency"])


def cached(target: Target) -> dict[str, Datapath] | None:
    """The datapaths (by dtype) stored for this host, or None (no directory, no entry, or a bad one)."""
    path = _path()
    if path is None:
        return None
    entry = _read(path).get(host_key(target))
    if entry is None:
        return None
    try:
        if not isinstance(entry, dict) or not entry:
            raise ValueError(f"not a table of dtypes: {entry!r}")
        return {dtype: _datapath(value) for dtype, value in entry.items()}
    except ValueError as exc:
        print(f"ukl: {path}: entry {host_key(target)}: {exc}; measuring again", file=sys.stderr)
        return None


def store(target: Target, datapaths: dict[str, Datapath]) -> None:
    """Add this host's datapaths to the file (written whole to a temporary file, then renamed over it)."""
    path = _path()
    if path is None or not path.parent.is_dir():
        return
    data = _read(path, quiet=True)  # a damaged file was said when read
    data[host_key(target)] = {dtype: d.__dict__ for dtype, d in datapaths.items()}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".ukl-datapaths-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        print(f"ukl: {path}: the measured datapath was not kept ({exc})", file=sys.stderr)
