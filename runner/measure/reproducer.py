"""A reproducer for every failed candidate: a folder with its strategy, problem and target, its
stage dumps as far as they got, and the one `ukl` command that replays it.

The folder is named by the strategy's hash and the status only (a strategy's name never becomes
a path), and lives where the results database is (`repro/` beside it).
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from pipelines.targets import get_target
from transforms.steps import PLUGINS_ENV, load_plugins

from runner import files
from runner.config.fields import check_threads, fits_in_memory
from runner.measure.lifecycle import BUILD_ERRORS, Candidate, build
from runner.measure.record import Record

#: Statuses that leave a reproducer.
FAILURES = ("compile_error", "wrong_answer", "crash", "timeout")
#: Environment a replay needs as it was: plugin steps and the host ISA cap.
REPLAY_ENV = (PLUGINS_ENV, "UKL_HOST_ISA")


def folder_for(root: Path, candidate: Candidate, record: Record) -> Path:
    return root / f"{candidate.key}-{record.status}"


def write(root: Path, candidate: Candidate, record: Record) -> Path:
    """Write the reproducer of a failed `record` under `root`; returns its folder."""
    folder = folder_for(root, candidate, record)
    data = candidate.to_dict()
    contents = {"strategy.json": data["strategy"], "problem.json": data["problem"],
                "target.json": {"name": candidate.target.name, "cpu": candidate.target.cpu},
                "outcome.json": {"status": record.status, "error": record.error}}
    for name, data in contents.items():
        files.write(folder / name, json.dumps(data, indent=2, sort_keys=True) + "\n")
    if record.status in ("compile_error", "wrong_answer"):
        # Rebuild here, keeping every stage: compilation is deterministic, so it fails (or builds the
        # wrong code) the same way. A crash or timeout may have been the compiler's: not redone here.
        stages: dict[str, str] = {}
        try:
            build(candidate, jit=False, stages=stages)
        except BUILD_ERRORS:
            pass
        for stage, text in stages.items():
            files.write(folder / "stages" / stage, text)
    files.write(folder / "command.txt", command(folder) + "\n")
    return folder


def command(folder: Path) -> str:
    """The command that replays a reproducer, with the environment it needs."""
    env = [f"{name}={shlex.quote(os.environ[name])}" for name in REPLAY_ENV if os.environ.get(name)]
    return " ".join([*env, "ukl", "repro", shlex.quote(str(folder))])


#: A reproducer's files are a few kilobytes each.
MAX_FILE_BYTES = 1 << 20


def load(folder: Path) -> tuple[Candidate, str]:
    """(the candidate a reproducer folder describes, the status it was recorded with). Every file is
    distrusted: ValueError (or StrategyError, SpecError, UnknownTarget) naming the file and field when
    one is missing, not a regular file, not the JSON it should be, or describes what cannot run here."""
    if folder.is_symlink() or not folder.is_dir():
        raise ValueError(f"{folder}: not a reproducer folder (a directory holding strategy.json, problem.json, "
                         "target.json and outcome.json)")

    def read(name: str, keys: dict[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
        data = files.read_json_object(folder / name, MAX_FILE_BYTES, f"a reproducer's {name}")
        for key, value in data.items() if keys is not None else ():
            if key not in keys:
                raise ValueError(f"{folder / name}: unknown key {key!r} (keys: {', '.join(keys)})")
            if not isinstance(value, keys[key]) or isinstance(value, bool):
                raise ValueError(f"{folder / name}: {key} must be {keys[key].__name__}, got {value!r}")
        return data

    target, outcome = read("target.json", {"name": str, "cpu": str}), read("outcome.json", {"status": str, "error": str})
    if "name" not in target:
        raise ValueError(f"{folder / 'target.json'}: name: missing")
    if outcome.get("status") not in FAILURES:
        raise ValueError(f"{folder / 'outcome.json'}: status must be one of {list(FAILURES)}, "
                         f"got {outcome.get('status')!r}")
    load_plugins()
    strategy, problem = read("strategy.json"), read("problem.json")
    if not isinstance(problem.get("kind"), str):
        raise ValueError(f"{folder / 'problem.json'}: kind: missing (the problem's kind, e.g. \"microkernel\")")
    try:
        candidate = Candidate.from_dict({"strategy": strategy, "problem": problem}, get_target(target["name"]))
    except TypeError as exc:  # a field a kind's spec does not have
        raise ValueError(f"{folder / 'problem.json'}: {exc}") from None
    check_threads(candidate.kind.threads(candidate.problem), f"{folder / 'problem.json'}: threads")
    fits_in_memory(candidate.kind.bytes_needed(candidate.problem), f"{folder / 'problem.json'}")
    return candidate, outcome["status"]


def attach(root: Path, candidate: Candidate, record: Record) -> Record:
    """Write a failed record's reproducer and name it in the record (its JSON and the store)."""
    if record.status in FAILURES:
        folder = write(root, candidate, record)
        record.extra.update(reproducer=str(folder), reproduce=command(folder))
    return record
