"""SQLite results store. Every result is committed as soon as it exists, so a killed run loses nothing."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pipelines.targets import Target

from .environment import host_cpu_model, versions
from .record import Record

DEFAULT_DB = Path("results/ukl.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    command TEXT NOT NULL,
    config TEXT,
    experiment TEXT,
    target_json TEXT NOT NULL,
    host_cpu TEXT NOT NULL,
    versions_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peaks (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    dtype TEXT NOT NULL,
    gflops REAL NOT NULL,
    samples_json TEXT NOT NULL,
    measured_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    measured_at TEXT NOT NULL,
    experiment TEXT,
    name TEXT NOT NULL,
    strategy_hash TEXT NOT NULL,
    strategy_json TEXT NOT NULL,
    kernel_json TEXT NOT NULL,
    target TEXT NOT NULL,
    target_triple TEXT NOT NULL,
    target_cpu TEXT NOT NULL,
    target_features TEXT NOT NULL,
    host_cpu TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    status TEXT NOT NULL,
    correct INTEGER,
    max_abs_error REAL,
    error TEXT,
    samples_json TEXT,
    iterations INTEGER,
    gflops REAL,
    gflops_min REAL,
    gflops_max REAL,
    cv REAL,
    peak_gflops REAL,
    fraction_of_peak REAL,
    compile_seconds REAL,
    phase TEXT NOT NULL DEFAULT 'full',
    kind TEXT NOT NULL DEFAULT 'microkernel',
    vector_bits INTEGER,
    peak_samples_json TEXT
);
CREATE INDEX IF NOT EXISTS results_key ON results(strategy_hash, target, host_cpu);
"""

#: How a result was measured: `full` (the config's timing policy), `screen` (a sweep's short
#: first pass), `rescreen` (a noisy screen measured again before leaders are chosen) or `final`
#: (a sweep leader re-measured at full length).
PHASES = FULL, SCREEN, RESCREEN, FINAL = ("full", "screen", "rescreen", "final")
#: Phases of a sweep's short first pass.
SCREENING = (SCREEN, RESCREEN)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: Path | str = DEFAULT_DB):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        for column, declaration in (("phase", "TEXT NOT NULL DEFAULT 'full'"),  # stores from before they existed
                                    ("kind", "TEXT NOT NULL DEFAULT 'microkernel'"),
                                    ("vector_bits", "INTEGER"), ("peak_samples_json", "TEXT")):
            if column not in columns:
                self._db.execute(f"ALTER TABLE results ADD COLUMN {column} {declaration}")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(self, command: str, target: Target, config: str | None = None,
                  experiment: str | None = None) -> int:
        cur = self._db.execute(
            "INSERT INTO runs (started_at, command, config, experiment, target_json, host_cpu, versions_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_now(), command, config, experiment, json.dumps(target.to_dict()), host_cpu_model(),
             json.dumps(versions())))
        self._db.commit()
        return int(cur.lastrowid)

    def add_peak(self, run_id: int, dtype: str, gflops: float, samples: tuple[float, ...]) -> None:
        self._db.execute("INSERT INTO peaks VALUES (?, ?, ?, ?, ?)",
                         (run_id, dtype, gflops, json.dumps(samples), _now()))
        self._db.commit()

    def add(self, run_id: int, record: Record, target: Target, experiment: str | None = None,
            phase: str = FULL) -> None:
        assert phase in PHASES, phase
        data = record.to_json()
        m = record.measurement
        self._db.execute(
            "INSERT INTO results (run_id, measured_at, experiment, name, strategy_hash, strategy_json,"
            " kernel_json, target, target_triple, target_cpu, target_features, host_cpu, versions_json,"
            " status, correct, max_abs_error, error, samples_json, iterations, gflops, gflops_min,"
            " gflops_max, cv, peak_gflops, fraction_of_peak, compile_seconds, phase, kind, vector_bits,"
            " peak_samples_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, _now(), experiment, data["name"], data["strategy_hash"],
             json.dumps(record.strategy.to_dict(), sort_keys=True),
             json.dumps(record.strategy.kernel.to_dict()), target.name, target.triple,
             record.strategy.llvm.cpu or target.cpu, record.strategy.llvm.features or target.features,
             host_cpu_model(), json.dumps(versions()), data["status"],
             None if data["correct"] is None else int(data["correct"]), data["max_abs_error"], data["error"],
             None if m is None else json.dumps(m.gflops_samples), None if m is None else m.iterations,
             data["gflops"], data["gflops_min"], data["gflops_max"], data["cv"], data["peak_gflops"],
             data["fraction_of_peak"], data["compile_seconds"], phase, data.get("kind", "microkernel"),
             record.vector_bits, None if record.peak is None else json.dumps(record.peak.gflops_samples)))
        self._db.commit()

    def measured(self, target: str, phases: tuple[str, ...]) -> dict[str, float]:
        """Strategy hash -> best fraction of peak (0 when never verified) over results of `phases`
        for `target` on this host: what --resume skips."""
        marks = ", ".join("?" * len(phases))
        rows = self._db.execute(f"SELECT strategy_hash, MAX(COALESCE(fraction_of_peak, 0)) FROM results"
                                f" WHERE target = ? AND host_cpu = ? AND phase IN ({marks}) GROUP BY strategy_hash",
                                (target, host_cpu_model(), *phases))
        return {row[0]: row[1] for row in rows}

    def strategy(self, hash_prefix: str) -> dict[str, Any]:
        """The stored strategy (as JSON) whose hash starts with `hash_prefix`; LookupError unless exactly one."""
        found = {row[0]: row[1] for row in self._db.execute(
            "SELECT strategy_hash, strategy_json FROM results WHERE strategy_hash LIKE ? || '%'", (hash_prefix,))}
        if len(found) != 1:
            raise LookupError(f"{len(found)} stored strategies have a hash starting with {hash_prefix!r} "
                              f"in {self.path} (need exactly one)")
        return json.loads(next(iter(found.values())))

    def rows(self, where: str = "", params: tuple[Any, ...] = ()) -> Iterator[dict[str, Any]]:
        self._db.row_factory = sqlite3.Row
        try:
            for row in self._db.execute(f"SELECT * FROM results {where} ORDER BY id", params):
                yield dict(row)
        finally:
            self._db.row_factory = None
