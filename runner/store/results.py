"""SQLite results store. Every result is committed as soon as it exists, so a killed run loses nothing."""
from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from kernels_mlir.problem import workload_key
from pipelines.targets import Target
from transforms.strategy import strategy_hash

from runner.measure.environment import host_cpu_model, versions
from runner.measure.record import Record

DEFAULT_DB = Path("results/ukl.sqlite")


class StoreError(ValueError):
    """A results database that cannot be used as one; str() is the one line the CLI prints."""

#: The schema this code writes. Every older store is migrated to it on open (MIGRATIONS), keeping
#: every row; the version lives in SQLite's `PRAGMA user_version`.
SCHEMA_VERSION = 3

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
CREATE TABLE IF NOT EXISTS workloads (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    problem_json TEXT NOT NULL
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
    peak_samples_json TEXT,
    workload_hash TEXT REFERENCES workloads(hash),
    gemm_hash TEXT,
    baseline_gflops REAL,
    ratio_to_baseline REAL,
    ratio_ci_low REAL,
    ratio_ci_high REAL,
    record_json TEXT
);
CREATE INDEX IF NOT EXISTS results_key ON results(strategy_hash, target, host_cpu);
CREATE TABLE IF NOT EXISTS crossovers (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    measured_at TEXT NOT NULL,
    experiment TEXT,
    target TEXT NOT NULL,
    host_cpu TEXT NOT NULL,
    dtype TEXT NOT NULL,
    routes_json TEXT NOT NULL,
    points_json TEXT NOT NULL,
    boundary_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    measured_at TEXT NOT NULL,
    name TEXT NOT NULL,
    strategy_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    host_cpu TEXT NOT NULL,
    record_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    reason TEXT NOT NULL,
    count INTEGER NOT NULL
);
"""

#: Columns each version added to `results` (a store from before a version lacks them).
_ADDED_COLUMNS = {
    1: (("phase", "TEXT NOT NULL DEFAULT 'full'"), ("kind", "TEXT NOT NULL DEFAULT 'microkernel'")),
    2: (("vector_bits", "INTEGER"), ("peak_samples_json", "TEXT"), ("workload_hash", "TEXT REFERENCES workloads(hash)"),
        ("gemm_hash", "TEXT"), ("baseline_gflops", "REAL"), ("ratio_to_baseline", "REAL"), ("ratio_ci_low", "REAL"),
        ("ratio_ci_high", "REAL"), ("record_json", "TEXT")),
}
_GEMM_NAME = re.compile(r"@(\d+)x(\d+)x(\d+)$")


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """Version 1 kept a GEMM's hash in strategy_hash and its shape only in the name: the micro-kernel's
    hash moves back to strategy_hash, the GEMM's to gemm_hash, and every row gets its workload."""
    rows = db.execute("SELECT id, name, kind, strategy_hash, strategy_json, kernel_json FROM results").fetchall()
    for row_id, name, kind, stored_hash, strategy_json, kernel_json in rows:
        strategy = json.loads(strategy_json)
        kernel_hash = strategy_hash(strategy)
        shape = _GEMM_NAME.search(name) if kind == "gemm" else None
        if kind == "gemm":
            problem = None if shape is None else {"m": int(shape[1]), "n": int(shape[2]), "k": int(shape[3]),
                                                  "dtype": strategy["kernel"]["dtype"]}
        else:
            problem = json.loads(kernel_json)
        key = None
        if problem is not None:
            key, canonical = workload_key(kind, problem)
            db.execute("INSERT OR IGNORE INTO workloads VALUES (?, ?, ?)", (key, kind, canonical))
        db.execute("UPDATE results SET strategy_hash = ?, gemm_hash = ?, workload_hash = ? WHERE id = ?",
                   (kernel_hash, stored_hash if kind == "gemm" else None, key, row_id))


#: How a result was measured: `full` (the config's timing policy), `screen` (a sweep's short
#: first pass), `rescreen` (a noisy screen measured again before leaders are chosen) or `final`
#: (a sweep leader re-measured at full length).
PHASES = FULL, SCREEN, RESCREEN, FINAL = ("full", "screen", "rescreen", "final")
#: Phases of a sweep's short first pass.
SCREENING = (SCREEN, RESCREEN)

#: version -> what turns a store of version - 1 into one of that version (after its columns exist).
#: Version 3 only added tables (crossovers, predictions, rejections), which the schema creates.
MIGRATIONS = {1: lambda db: None, 2: _migrate_to_2, 3: lambda db: None}

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: How long to wait for another writer's lock before saying so (seconds).
LOCK_WAIT_SECONDS = 10.0


def _problem(path: Path, exc: sqlite3.Error) -> str:
    """One line saying what is wrong with the database, from SQLite's error."""
    text = str(exc)
    known = {"file is not a database": "is not a SQLite database: left untouched",
             "malformed": "is corrupted (SQLite: database disk image is malformed): left untouched",
             "unable to open": "cannot be opened as a database (a directory, or a folder without write access?)",
             "readonly": "is read-only: this command writes its results there",
             "locked": f"is locked by another writer (waited {LOCK_WAIT_SECONDS:g} s): try again when it is done",
             "disk is full": "cannot grow: the disk is full (every result written before is kept)",
             "disk I/O error": "could not be written (disk I/O error; every result written before is kept)"}
    reason = next((why for key, why in known.items() if key in text), f"failed: {text}")
    return f"{path}: {reason}"


class Store:
    """Results in SQLite. `readonly` stores (report, compare) never write: an older schema is migrated
    in a private in-memory copy instead of on disk."""

    def __init__(self, path: Path | str = DEFAULT_DB, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        for side in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"), Path(f"{self.path}-journal")):
            if side.is_symlink():
                raise StoreError(f"{side}: is a symbolic link; a results database and its side files must be "
                                 "regular files (not followed)")
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a results database")
        if readonly and not self.path.exists():
            raise StoreError(f"{self.path}: no such results database")
        try:
            self._open()
        except sqlite3.Error as exc:
            raise StoreError(_problem(self.path, exc)) from None

    def _open(self) -> None:
        if self.readonly:
            disk = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=LOCK_WAIT_SECONDS)
            version = self._check(disk)
            if version == SCHEMA_VERSION:
                self._db = disk
                return
            self._db = sqlite3.connect(":memory:")
            disk.backup(self._db)
            disk.close()
            self._migrate(version)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:  # SQLite answers "locked" at once (not after its busy wait) when two openers both escalate
            try:
                version = self._check(self._db)  # reads only: a file that is not ours is left as it was
                if version < SCHEMA_VERSION:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._migrate(version)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check(self, db: sqlite3.Connection) -> int:
        """The store's schema version; StoreError for a store this code must not touch."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer ukl (schema {version}; this one reads up to "
                             f"{SCHEMA_VERSION}): left untouched")
        existing = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        if existing and not {"strategy_hash", "strategy_json", "kernel_json"} <= existing:
            raise StoreError(f"{self.path}: has a 'results' table that is not a ukl store's: left untouched")
        return version

    def _migrate(self, version: int) -> None:
        """Bring the store to SCHEMA_VERSION in one transaction, keeping every row. A store from before
        versions existed (user_version 0) is brought through every step; a new one is just created."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock: another process may have created or migrated the store meanwhile.
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            existing = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)  # CREATE ... IF NOT EXISTS: tables an old store lacks
            for step in range(version + 1, SCHEMA_VERSION + 1) if existing else ():
                for column, declaration in _ADDED_COLUMNS.get(step, ()):
                    if column not in existing:
                        self._db.execute(f"ALTER TABLE results ADD COLUMN {column} {declaration}")
                MIGRATIONS[step](self._db)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @property
    def repro_root(self) -> Path:
        """Where failed candidates' reproducers go: beside the database."""
        return self.path.parent / "repro"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _writing(self):
        """A write: SQLite's failures (disk full, locked, read-only) become one StoreError line; what
        was committed before stays."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(_problem(self.path, exc)) from None

    def start_run(self, command: str, target: Target, config: str | None = None,
                  experiment: str | None = None) -> int:
        with self._writing():
            return self._start_run(command, target, config, experiment)

    def _start_run(self, command: str, target: Target, config: str | None, experiment: str | None) -> int:
        cur = self._db.execute(
            "INSERT INTO runs (started_at, command, config, experiment, target_json, host_cpu, versions_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_now(), command, config, experiment, json.dumps(target.to_dict()), host_cpu_model(),
             json.dumps(versions())))
        self._db.commit()
        return int(cur.lastrowid)

    def add(self, run_id: int, record: Record, target: Target, experiment: str | None = None,
            phase: str = FULL) -> None:
        """Commit one record: its queried fields as columns, its workload once, and all of it as JSON."""
        assert phase in PHASES, phase
        with self._writing():
            self._add(run_id, record, target, experiment, phase)

    def _add(self, run_id: int, record: Record, target: Target, experiment: str | None, phase: str) -> None:
        data = record.to_json()
        m = record.measurement
        kind, problem = record.workload()
        workload_hash, canonical = workload_key(kind, problem)
        ci = data.get("ratio_ci") or (None, None)
        row = {
            "run_id": run_id, "measured_at": _now(), "experiment": experiment, "name": data["name"],
            "strategy_hash": data["strategy_hash"], "strategy_json": json.dumps(record.strategy.to_dict(), sort_keys=True),
            "kernel_json": json.dumps(record.strategy.kernel.to_dict()), "target": target.name,
            "target_triple": target.triple, "target_cpu": record.strategy.llvm.cpu or target.cpu,
            "target_features": record.strategy.llvm.features or target.features, "host_cpu": host_cpu_model(),
            "versions_json": json.dumps(versions()), "status": data["status"],
            "correct": None if data["correct"] is None else int(data["correct"]),
            "max_abs_error": data["max_abs_error"], "error": data["error"],
            "samples_json": None if m is None else json.dumps(m.gflops_samples),
            "iterations": None if m is None else m.iterations,
            **{key: data[key] for key in ("gflops", "gflops_min", "gflops_max", "cv", "peak_gflops",
                                          "fraction_of_peak", "compile_seconds", "vector_bits")},
            "phase": phase, "kind": kind,
            "peak_samples_json": None if record.peak is None else json.dumps(record.peak.gflops_samples),
            "workload_hash": workload_hash, "gemm_hash": data.get("gemm_hash"),
            "baseline_gflops": data.get("baseline_gflops"), "ratio_to_baseline": data.get("ratio_to_baseline"),
            "ratio_ci_low": ci[0], "ratio_ci_high": ci[1], "record_json": json.dumps({**data, "phase": phase}),
        }
        self._db.execute("INSERT OR IGNORE INTO workloads VALUES (?, ?, ?)", (workload_hash, kind, canonical))
        self._db.execute(f"INSERT INTO results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
        self._db.commit()

    def add_crossover(self, run_id: int, experiment: str, target: Target, dtype: str, routes: list[str],
                      points: list[dict], boundary: dict) -> None:
        """A crossover's every shape (each route's GFLOP/s, the ratio and its interval) and its boundary:
        what `ukl report` redraws without measuring again."""
        with self._writing():
            self._db.execute("INSERT INTO crossovers (run_id, measured_at, experiment, target, host_cpu, dtype, "
                             "routes_json, points_json, boundary_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (run_id, _now(), experiment, target.name, host_cpu_model(), dtype, json.dumps(routes),
                              json.dumps(points), json.dumps(boundary)))
            self._db.commit()

    def crossovers(self, target: str | None = None) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT experiment, target, host_cpu, dtype, routes_json, points_json, boundary_json, "
                                "measured_at FROM crossovers ORDER BY id").fetchall()
        keys = ("experiment", "target", "host_cpu", "dtype", "routes", "points", "boundary", "measured_at")
        found = [dict(zip(keys, row)) for row in rows]
        for item in found:
            for key in ("routes", "points", "boundary"):
                item[key] = json.loads(item[key])
        return [c for c in found if target is None or c["target"] == target]

    def add_prediction(self, run_id: int, record: dict[str, Any]) -> None:
        """One `ukl mca` record (llvm-mca's prediction of a strategy's hot loop on a target)."""
        with self._writing():
            self._db.execute("INSERT INTO predictions (run_id, measured_at, name, strategy_hash, target, host_cpu, "
                             "record_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (run_id, _now(), record["name"], record["strategy_hash"], record["target"],
                              host_cpu_model(), json.dumps(record)))
            self._db.commit()

    def predictions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest prediction per (strategy hash, target)."""
        rows = self._db.execute("SELECT strategy_hash, target, record_json FROM predictions ORDER BY id")
        return {(h, t): json.loads(r) for h, t, r in rows}

    def add_rejections(self, run_id: int, rejected: dict[str, int]) -> None:
        """Why a sweep's points were rejected before compiling, with how many each time."""
        if not rejected:
            return
        with self._writing():
            self._db.executemany("INSERT INTO rejections VALUES (?, ?, ?)",
                                 [(run_id, reason, count) for reason, count in rejected.items()])
            self._db.commit()

    def rejections(self, target: str | None = None) -> dict[str, int]:
        """Every stored rejection reason with its total count (of runs for `target`, or all)."""
        rows = self._db.execute("SELECT reason, SUM(count), runs.target_json FROM rejections "
                                "JOIN runs ON runs.id = rejections.run_id GROUP BY reason, runs.target_json")
        totals: dict[str, int] = {}
        for reason, count, target_json in rows:
            if target is None or json.loads(target_json)["name"] == target:
                totals[reason] = totals.get(reason, 0) + count
        return totals

    def measured(self, target: str, phases: tuple[str, ...]) -> dict[str, float]:
        """Candidate key (a GEMM's hash, else the strategy's) -> best fraction of peak (0 when never
        verified) over results of `phases` for `target` on this host: what --resume skips."""
        marks = ", ".join("?" * len(phases))
        rows = self._db.execute(f"SELECT COALESCE(gemm_hash, strategy_hash) AS k, MAX(COALESCE(fraction_of_peak, 0))"
                                f" FROM results WHERE target = ? AND host_cpu = ? AND phase IN ({marks}) GROUP BY k",
                                (target, host_cpu_model(), *phases))
        return {row[0]: row[1] for row in rows}

    def strategy(self, hash_prefix: str) -> dict[str, Any]:
        """The stored strategy (as JSON) whose hash starts with `hash_prefix` (literally); LookupError
        unless exactly one. A GEMM's hash is named as such: compare takes micro-kernel strategies."""
        prefix = "substr({}, 1, ?) = ?"
        found = {row[0]: row[1] for row in self._db.execute(
            f"SELECT strategy_hash, strategy_json FROM results WHERE {prefix.format('strategy_hash')}",
            (len(hash_prefix), hash_prefix))}
        if not found and self._db.execute(f"SELECT 1 FROM results WHERE {prefix.format('gemm_hash')}",
                                          (len(hash_prefix), hash_prefix)).fetchone():
            raise LookupError(f"{hash_prefix!r} is a GEMM's hash in {self.path}: compare takes micro-kernel "
                              "strategy hashes (the strategy_hash of its rows)")
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
