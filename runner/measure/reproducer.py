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


def load(folder: Path) -> Candidate:
    """The candidate a reproducer folder describes (ValueError naming the file when it cannot be read)."""
    def read(name: str) -> dict[str, Any]:
        try:
            return json.loads((folder / name).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{folder / name}: cannot read the reproducer: {exc}") from None
    load_plugins()
    return Candidate.from_dict({"strategy": read("strategy.json"), "problem": read("problem.json")},
                               get_target(read("target.json")["name"]))


def attach(root: Path, candidate: Candidate, record: Record) -> Record:
    """Write a failed record's reproducer and name it in the record (its JSON and the store)."""
    if record.status in FAILURES:
        folder = write(root, candidate, record)
        record.extra.update(reproducer=str(folder), reproduce=command(folder))
    return record
