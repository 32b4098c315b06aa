"""The results store, through SQLAlchemy: a SQLite file (the default) or a PostgreSQL server, with the
same schema and migrations on both. Every result is committed as soon as it exists, so a killed run
loses nothing; results of a shared sweep (`study`) are written at most once per candidate, host and phase.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlalchemy
from sqlalchemy import (Column, Float, ForeignKey, Index, Integer, MetaData, Table, Text, func, inspect, select,
                        text)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex

from kernels_mlir.problem import workload_key
from pipelines.targets import Target
from transforms.strategy import strategy_hash

from runner.measure.environment import host_cpu_model, host_kind, versions
from runner.measure.record import Record
from runner.store.database import (LOCK_WAIT_SECONDS, RECONNECT_SECONDS, Database, StoreError, as_database, server_engine,
                                   server_problem, sqlite_engine, sqlite_problem, with_reconnects)

__all__ = ["Store", "StoreError", "DEFAULT_DB", "SCHEMA_VERSION", "PHASES", "FULL", "SCREEN", "RESCREEN", "FINAL",
           "SCREENING"]

DEFAULT_DB = Path("results/ukl.sqlite")
T = TypeVar("T")

#: The schema this code writes. Every older store is migrated to it on open (MIGRATIONS), keeping
#: every row. SQLite keeps the version in `PRAGMA user_version`, a server in the table `ukl_schema`.
SCHEMA_VERSION = 6

META = MetaData()
runs = Table(
    "runs", META,
    Column("id", Integer, primary_key=True),
    Column("started_at", Text, nullable=False), Column("command", Text, nullable=False),
    Column("config", Text), Column("experiment", Text), Column("target_json", Text, nullable=False),
    Column("host_cpu", Text, nullable=False), Column("versions_json", Text, nullable=False))
peaks = Table(  # kept for old stores; nothing writes it any more
    "peaks", META,
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False), Column("dtype", Text, nullable=False),
    Column("gflops", Float, nullable=False), Column("samples_json", Text, nullable=False),
    Column("measured_at", Text, nullable=False))
workloads = Table(
    "workloads", META,
    Column("hash", Text, primary_key=True), Column("kind", Text, nullable=False),
    Column("problem_json", Text, nullable=False))
results = Table(
    "results", META,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("measured_at", Text, nullable=False), Column("experiment", Text), Column("name", Text, nullable=False),
    Column("strategy_hash", Text, nullable=False), Column("strategy_json", Text, nullable=False),
    Column("kernel_json", Text, nullable=False), Column("target", Text, nullable=False),
    Column("target_triple", Text, nullable=False), Column("target_cpu", Text, nullable=False),
    Column("target_features", Text, nullable=False), Column("host_cpu", Text, nullable=False),
    Column("versions_json", Text, nullable=False), Column("status", Text, nullable=False),
    Column("correct", Integer), Column("max_abs_error", Float), Column("error", Text),
    Column("samples_json", Text), Column("iterations", Integer),
    *(Column(name, Float) for name in ("gflops", "gflops_min", "gflops_max", "cv", "peak_gflops",
                                       "fraction_of_peak", "compile_seconds")),
    Column("phase", Text, nullable=False, server_default="full"),
    Column("kind", Text, nullable=False, server_default="microkernel"),
    Column("vector_bits", Integer), Column("peak_samples_json", Text),
    Column("workload_hash", Text, ForeignKey("workloads.hash")), Column("gemm_hash", Text),
    *(Column(name, Float) for name in ("baseline_gflops", "ratio_to_baseline", "ratio_ci_low", "ratio_ci_high")),
    Column("record_json", Text),
    Column("study", Text), Column("host_kind", Text),
    Column("candidate_key", Text))
#: A candidate's key, as its problem kind gives it (runner.kinds: a micro-kernel's strategy hash, a GEMM's hash).
CANDIDATE_KEY = results.c.candidate_key
Index("results_key", results.c.strategy_hash, results.c.target, results.c.host_cpu)
#: At most one result per shared sweep, candidate, kind of host and phase, whoever writes it.
Index("results_once_per_study", results.c.study, CANDIDATE_KEY, results.c.host_kind, results.c.phase, unique=True,
      sqlite_where=results.c.study.isnot(None), postgresql_where=results.c.study.isnot(None))
crossovers = Table(
    "crossovers", META,
    Column("id", Integer, primary_key=True), Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("measured_at", Text, nullable=False), Column("experiment", Text), Column("target", Text, nullable=False),
    Column("host_cpu", Text, nullable=False), Column("dtype", Text, nullable=False),
    Column("routes_json", Text, nullable=False), Column("points_json", Text, nullable=False),
    Column("boundary_json", Text, nullable=False))
route_studies = Table(
    "route_studies", META,
    Column("id", Integer, primary_key=True), Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("measured_at", Text, nullable=False), Column("experiment", Text), Column("target", Text, nullable=False),
    Column("host_cpu", Text, nullable=False), Column("layer", Text, nullable=False),
    Column("network", Text, nullable=False), Column("study_json", Text, nullable=False))
predictions = Table(
    "predictions", META,
    Column("id", Integer, primary_key=True), Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("measured_at", Text, nullable=False), Column("name", Text, nullable=False),
    Column("strategy_hash", Text, nullable=False), Column("target", Text, nullable=False),
    Column("host_cpu", Text, nullable=False), Column("record_json", Text, nullable=False))
rejections = Table(
    "rejections", META,
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False), Column("reason", Text, nullable=False),
    Column("count", Integer, nullable=False))
#: A server's schema version (SQLite uses PRAGMA user_version).
ukl_schema = Table("ukl_schema", META, Column("version", Integer, nullable=False))

#: Columns each version added to `results` (a SQLite store from before a version lacks them).
_ADDED_COLUMNS = {
    1: (("phase", "TEXT NOT NULL DEFAULT 'full'"), ("kind", "TEXT NOT NULL DEFAULT 'microkernel'")),
    2: (("vector_bits", "INTEGER"), ("peak_samples_json", "TEXT"), ("workload_hash", "TEXT REFERENCES workloads(hash)"),
        ("gemm_hash", "TEXT"), ("baseline_gflops", "REAL"), ("ratio_to_baseline", "REAL"), ("ratio_ci_low", "REAL"),
        ("ratio_ci_high", "REAL"), ("record_json", "TEXT")),
    4: (("study", "TEXT"), ("host_kind", "TEXT")),
    5: (("candidate_key", "TEXT"),),
}
_GEMM_NAME = re.compile(r"@(\d+)x(\d+)x(\d+)$")
#: What schema 1 called its GEMM rows: migrations read old stores in their own words, whatever kinds
#: are registered now.
_V1_GEMM = "gemm"


def _migrate_to_2(db: Connection) -> None:
    """Version 1 kept a GEMM's hash in strategy_hash and its shape only in the name: the micro-kernel's
    hash moves back to strategy_hash, the GEMM's to gemm_hash, and every row gets its workload."""
    rows = db.execute(text("SELECT id, name, kind, strategy_hash, strategy_json, kernel_json FROM results")).all()
    for row_id, name, kind, stored_hash, strategy_json, kernel_json in rows:
        strategy = json.loads(strategy_json)
        kernel_hash = strategy_hash(strategy)
        shape = _GEMM_NAME.search(name) if kind == _V1_GEMM else None
        if kind == _V1_GEMM:
            problem = None if shape is None else {"m": int(shape[1]), "n": int(shape[2]), "k": int(shape[3]),
                                                  "dtype": strategy["kernel"]["dtype"]}
        else:
            problem = json.loads(kernel_json)
        key = None
        if problem is not None:
            key, canonical = workload_key(kind, problem)
            db.execute(_insert_ignoring(db, workloads).values(hash=key, kind=kind, problem_json=canonical))
        db.execute(results.update().where(results.c.id == row_id).values(
            strategy_hash=kernel_hash, gemm_hash=stored_hash if kind == _V1_GEMM else None, workload_hash=key))


#: How a result was measured: `full` (the config's timing policy), `screen` (a sweep's short
#: first pass), `rescreen` (a noisy screen measured again before leaders are chosen) or `final`
#: (a sweep leader re-measured at full length).
PHASES = FULL, SCREEN, RESCREEN, FINAL = ("full", "screen", "rescreen", "final")
#: Phases of a sweep's short first pass.
SCREENING = (SCREEN, RESCREEN)

def _migrate_to_5(db: Connection) -> None:
    """Version 4 derived a candidate's key as coalesce(gemm_hash, strategy_hash), the only two kinds it
    had: the key becomes a column every kind fills, and the once-per-study index moves onto it."""
    db.execute(results.update().where(results.c.candidate_key.is_(None)).values(
        candidate_key=func.coalesce(results.c.gemm_hash, results.c.strategy_hash)))
    db.exec_driver_sql("DROP INDEX IF EXISTS results_once_per_study")


#: version -> what turns a store of version - 1 into one of that version (after its columns exist).
#: Versions 3, 4 and 6 only added tables, columns and an index, which the schema creates.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: lambda db: None, 2: _migrate_to_2, 3: lambda db: None,
                                                       4: lambda db: None, 5: _migrate_to_5, 6: lambda db: None}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _insert_ignoring(db: Connection, table: Table):
    """INSERT that skips a row whose unique key is taken (the same SQL on both dialects)."""
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class Store:
    """Results in SQLite or PostgreSQL. `readonly` stores (report, compare) never write: an older
    SQLite schema is migrated in a private in-memory copy instead of on disk."""

    def __init__(self, db: Database | Path | str = DEFAULT_DB, *, readonly: bool = False,
                 patience: float = RECONNECT_SECONDS, on_wait: Callable[[str], None] | None = None):
        """`patience`: how long a server that stopped answering is retried (seconds); `on_wait` hears
        of each retry."""
        self.database = as_database(db)
        self.readonly = readonly
        self.patience = patience
        self.on_wait = on_wait
        self.path = self.database.path
        self.shown = self.database.shown
        if self.path is not None:
            self._check_file(readonly)
        try:
            self._open()
        except StoreError:
            raise
        except (sqlite3.Error, sqlalchemy.exc.DBAPIError) as exc:
            raise StoreError(self._problem(exc)) from None

    def _check_file(self, readonly: bool) -> None:
        for side in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"), Path(f"{self.path}-journal")):
            if side.is_symlink():
                raise StoreError(f"{side}: is a symbolic link; a results database and its side files must be "
                                 "regular files (not followed)")
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a results database")
        if readonly and not self.path.exists():
            raise StoreError(f"{self.path}: no such results database")

    def _problem(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", exc)
        return sqlite_problem(self.shown, orig) if self.path is not None else server_problem(self.shown, exc)

    @property
    def is_server(self) -> bool:
        return self.path is None

    def _open(self) -> None:
        if self.path is None:  # not retried: a server that never answered is a wrong URL more often than not
            self._engine = server_engine(self.database)
            self._open_server()
            return
        if self.readonly:
            disk = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=LOCK_WAIT_SECONDS,
                                   check_same_thread=False)
            self._engine = sqlite_engine(lambda: disk)
            version = self._check()
            if version == SCHEMA_VERSION:
                return
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            disk.backup(memory)
            self._engine.dispose()
            disk.close()
            self._engine = sqlite_engine(lambda: memory)
            self._migrate(version)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        path = self.path
        self._engine = sqlite_engine(lambda: sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, check_same_thread=False))
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:  # SQLite answers "locked" at once (not after its busy wait) when two openers both escalate
            try:
                version = self._check()  # reads only: a file that is not ours is left as it was
                if version < SCHEMA_VERSION:
                    with self._engine.connect().execution_options(begin=None) as db:
                        db.exec_driver_sql("PRAGMA journal_mode=WAL")
                    self._migrate(version)
                return
            except sqlalchemy.exc.OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _open_server(self) -> None:
        version = self._check()
        if version < SCHEMA_VERSION:
            if self.readonly:  # stores on a server start at schema 4: an older version is no store yet
                raise StoreError(f"{self.shown}: holds no ukl results yet (nothing was written there)")
            self._migrate(version)

    def _version(self, db: Connection) -> int:
        if db.dialect.name == "sqlite":
            return db.exec_driver_sql("PRAGMA user_version").scalar_one()
        if not inspect(db).has_table("ukl_schema"):
            return 0
        return db.execute(select(func.max(ukl_schema.c.version))).scalar() or 0

    def _set_version(self, db: Connection) -> None:
        if db.dialect.name == "sqlite":
            db.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            db.execute(ukl_schema.delete())
            db.execute(ukl_schema.insert().values(version=SCHEMA_VERSION))

    def _check(self) -> int:
        """The store's schema version; StoreError for a store this code must not touch."""
        with self._engine.connect() as db:
            version = self._version(db)
            existing = {c["name"] for c in inspect(db).get_columns("results")} \
                if inspect(db).has_table("results") else set()
            db.rollback()
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.shown}: written by a newer ukl (schema {version}; this one reads up to "
                             f"{SCHEMA_VERSION}): left untouched")
        if existing and not {"strategy_hash", "strategy_json", "kernel_json"} <= existing:
            raise StoreError(f"{self.shown}: has a 'results' table that is not a ukl store's: left untouched")
        return version

    def _migrate(self, version: int) -> None:
        """Bring the store to SCHEMA_VERSION in one transaction, keeping every row: under SQLite's write
        lock, or a server's advisory lock, since another process may be creating or migrating it too."""
        with self._engine.connect().execution_options(begin="BEGIN IMMEDIATE") as db, db.begin():
            if db.dialect.name == "postgresql":
                db.execute(text("SELECT pg_advisory_xact_lock(7261)"))  # any constant: ukl's migration lock
            version = self._version(db)  # under the lock: someone may have migrated meanwhile
            if version >= SCHEMA_VERSION:
                return
            existing = {c["name"] for c in inspect(db).get_columns("results")} \
                if inspect(db).has_table("results") else set()
            META.create_all(db)  # tables an old store lacks (each checked first)
            for step in range(version + 1, SCHEMA_VERSION + 1) if existing else ():
                for column, declaration in _ADDED_COLUMNS.get(step, ()):
                    if column not in existing:
                        db.exec_driver_sql(f"ALTER TABLE results ADD COLUMN {column} {declaration}")
                MIGRATIONS[step](db)
            for index in results.indexes:  # IF NOT EXISTS: reflection cannot see an expression index
                db.execute(CreateIndex(index, if_not_exists=True))
            self._set_version(db)

    def retrying(self, action: Callable[[], T]) -> T:
        """`action()`; a server that stops answering is retried with backoff, under this store's retry
        policy (SQLite waits for its lock itself). Also for what else talks to the same server (Optuna)."""
        return action() if self.path is not None else with_reconnects(action, self.shown, self.patience, self.on_wait)

    @property
    def url_text(self) -> str:
        """The server's URL with its password, for a library that connects by itself (Optuna)."""
        return self.database.url_text

    @property
    def repro_root(self) -> Path:
        """Where failed candidates' reproducers go: beside a SQLite file, under results/ for a server."""
        return self.database.repro_root

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, action: Callable[[Connection], T]) -> T:
        """One transaction of writes. Failures (disk full, locked, read-only, a server gone for good)
        become one StoreError line; what was committed before stays."""
        if self.readonly:
            raise StoreError(f"{self.shown}: opened read-only")

        def transaction() -> T:
            with self._engine.begin() as db:
                return action(db)
        try:
            return self.retrying(transaction)
        except (sqlite3.Error, sqlalchemy.exc.DBAPIError) as exc:
            raise StoreError(self._problem(exc)) from None

    def _read(self, action: Callable[[Connection], T]) -> T:
        def transaction() -> T:
            with self._engine.connect() as db:
                found = action(db)
                db.rollback()
                return found
        try:
            return self.retrying(transaction)
        except (sqlite3.Error, sqlalchemy.exc.DBAPIError) as exc:
            raise StoreError(self._problem(exc)) from None

    def start_run(self, command: str, target: Target, config: str | None = None,
                  experiment: str | None = None) -> int:
        row = {"started_at": _now(), "command": command, "config": config, "experiment": experiment,
               "target_json": json.dumps(target.to_dict()), "host_cpu": host_cpu_model(),
               "versions_json": json.dumps(versions())}
        return int(self._write(lambda db: db.execute(runs.insert().values(**row)).inserted_primary_key[0]))

    def add(self, run_id: int, record: Record, target: Target, experiment: str | None = None,
            phase: str = FULL, study: str | None = None) -> bool:
        """Commit one record: its queried fields as columns, its workload once, and all of it as JSON.
        In a shared sweep (`study`) a second result for the same candidate, host kind and phase is
        dropped: False then."""
        assert phase in PHASES, phase
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
            "study": study, "host_kind": host_kind(target),
            "candidate_key": data.get("candidate_key") or data["strategy_hash"],
        }

        def insert(db: Connection) -> bool:
            db.execute(_insert_ignoring(db, workloads).values(hash=workload_hash, kind=kind, problem_json=canonical))
            inserted = db.execute(_insert_ignoring(db, results).values(**row).returning(results.c.id)).first()
            return inserted is not None
        return self._write(insert)

    def add_crossover(self, run_id: int, experiment: str, target: Target, dtype: str, routes: list[str],
                      points: list[dict], boundary: dict) -> None:
        """A crossover's every shape (each route's GFLOP/s, the ratio and its interval) and its boundary:
        what `ukl report` redraws without measuring again."""
        row = {"run_id": run_id, "measured_at": _now(), "experiment": experiment, "target": target.name,
               "host_cpu": host_cpu_model(), "dtype": dtype, "routes_json": json.dumps(routes),
               "points_json": json.dumps(points), "boundary_json": json.dumps(boundary)}
        self._write(lambda db: db.execute(crossovers.insert().values(**row)))

    def crossovers(self, target: str | None = None) -> list[dict[str, Any]]:
        c = crossovers.c
        rows = self._read(lambda db: db.execute(select(
            c.experiment, c.target, c.host_cpu, c.dtype, c.routes_json, c.points_json, c.boundary_json,
            c.measured_at).order_by(c.id)).all())
        keys = ("experiment", "target", "host_cpu", "dtype", "routes", "points", "boundary", "measured_at")
        found = [dict(zip(keys, row)) for row in rows]
        for item in found:
            try:
                for key in ("routes", "points", "boundary"):
                    item[key] = json.loads(item[key])
            except ValueError:  # a damaged row: listed with nothing to redraw
                item.update(routes=[], points=[], boundary={})
        return [c for c in found if target is None or c["target"] == target]

    def add_route_study(self, run_id: int, experiment: str, target: Target, study: dict[str, Any]) -> None:
        """One layer of a `ukl routes` study (every route's figures, ONNX Runtime's, the winner)."""
        row = {"run_id": run_id, "measured_at": _now(), "experiment": experiment, "target": target.name,
               "host_cpu": host_cpu_model(), "layer": study["layer"], "network": study["network"],
               "study_json": json.dumps(study)}
        self._write(lambda db: db.execute(route_studies.insert().values(**row)))

    def route_studies(self, target: str | None = None) -> list[dict[str, Any]]:
        """Every stored layer study (the latest per experiment, target, host and layer), oldest first; a
        damaged row is listed with `damaged` set and nothing else to show."""
        c = route_studies.c
        rows = self._read(lambda db: db.execute(select(
            c.experiment, c.target, c.host_cpu, c.layer, c.network, c.study_json, c.measured_at).order_by(c.id)).all())
        latest: dict[tuple, dict[str, Any]] = {}
        for experiment, target_name, host, layer, network, study_json, measured_at in rows:
            if target is not None and target_name != target:
                continue
            item = {"experiment": experiment, "target": target_name, "host_cpu": host, "measured_at": measured_at}
            try:
                study = json.loads(study_json)
                if not isinstance(study, dict) or not isinstance(study.get("routes"), dict):
                    raise ValueError
                item.update(study)
            except ValueError:
                item.update(layer=layer, network=network, damaged=True)
            latest[(experiment, target_name, host, layer)] = item
        return list(latest.values())

    def add_prediction(self, run_id: int, record: dict[str, Any]) -> None:
        """One `ukl mca` record (llvm-mca's prediction of a strategy's hot loop on a target)."""
        row = {"run_id": run_id, "measured_at": _now(), "name": record["name"],
               "strategy_hash": record["strategy_hash"], "target": record["target"], "host_cpu": host_cpu_model(),
               "record_json": json.dumps(record)}
        self._write(lambda db: db.execute(predictions.insert().values(**row)))

    def predictions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest prediction per (strategy hash, target)."""
        p = predictions.c
        rows = self._read(lambda db: db.execute(select(p.strategy_hash, p.target, p.record_json).order_by(p.id)).all())
        return {(h, t): json.loads(r) for h, t, r in rows}

    def add_rejections(self, run_id: int, rejected: dict[str, int]) -> None:
        """Why a sweep's points were rejected before compiling, with how many each time."""
        if rejected:
            self._write(lambda db: db.execute(rejections.insert(), [
                {"run_id": run_id, "reason": reason, "count": count} for reason, count in rejected.items()]))

    def rejections(self, target: str | None = None) -> dict[str, int]:
        """Every stored rejection reason with its total count (of runs for `target`, or all)."""
        j = rejections.join(runs, runs.c.id == rejections.c.run_id)
        rows = self._read(lambda db: db.execute(
            select(rejections.c.reason, func.sum(rejections.c.count), runs.c.target_json).select_from(j)
            .group_by(rejections.c.reason, runs.c.target_json)).all())
        totals: dict[str, int] = {}
        for reason, count, target_json in rows:
            if target is None or json.loads(target_json)["name"] == target:
                totals[reason] = totals.get(reason, 0) + int(count)
        return totals

    def measured(self, target: Target, phases: tuple[str, ...], study: str | None = None,
                 key: str | None = None) -> dict[str, float]:
        """Candidate key (a GEMM's hash, else the strategy's) -> best fraction of peak (0 when never
        verified) over results of `phases` for `target` on this kind of host (of one shared sweep, when
        `study` is given; of one candidate, when `key` is): what --resume skips."""
        r = results.c
        query = (select(CANDIDATE_KEY, func.max(func.coalesce(r.fraction_of_peak, 0.0)))
                 .where(r.target == target.name, r.host_cpu == host_cpu_model(), r.phase.in_(phases))
                 .group_by(CANDIDATE_KEY))
        if study is not None:
            query = query.where(r.study == study, r.host_kind == host_kind(target))
        if key is not None:
            query = query.where(CANDIDATE_KEY == key)
        return {key: value for key, value in self._read(lambda db: db.execute(query).all())}

    def strategy(self, hash_prefix: str) -> dict[str, Any]:
        """The stored strategy (as JSON) whose hash starts with `hash_prefix` (literally); LookupError
        unless exactly one. Another kind's candidate key (a GEMM's hash) is named as such: compare takes
        micro-kernel strategies."""
        r = results.c

        def starts(column):
            return func.substr(column, 1, len(hash_prefix)) == hash_prefix

        def find(db: Connection):
            found = dict(db.execute(select(r.strategy_hash, r.strategy_json).where(starts(r.strategy_hash))).all())
            other = None if found else db.execute(
                select(r.kind).where(starts(CANDIDATE_KEY)).limit(1)).scalar_one_or_none()
            return found, other
        found, other = self._read(find)
        if other is not None:
            raise LookupError(f"{hash_prefix!r} is the key of a {other} candidate in {self.shown}: compare takes "
                              "micro-kernel strategy hashes (the strategy_hash of its rows)")
        if len(found) != 1:
            raise LookupError(f"{len(found)} stored strategies have a hash starting with {hash_prefix!r} "
                              f"in {self.shown} (need exactly one)")
        (stored,) = found.values()
        try:
            return json.loads(stored)
        except ValueError:
            raise StoreError(f"{self.shown}: the stored strategy {hash_prefix!r} is not JSON (a damaged row)") from None

    def rows(self, *, kind: str | None = None, target: str | None = None, host_cpu: str | None = None,
             phases: tuple[str, ...] | None = None, status: str | None = None, study: str | None = None,
             host_kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Stored results in the order they were written, those given by each argument that is set."""
        r = results.c
        query = select(results).order_by(r.id)
        for column, value in ((r.kind, kind), (r.target, target), (r.host_cpu, host_cpu), (r.status, status),
                              (r.study, study), (r.host_kind, host_kind)):
            if value is not None:
                query = query.where(column == value)
        if phases is not None:
            query = query.where(r.phase.in_(phases))
        yield from (dict(row._mapping) for row in self._read(lambda db: db.execute(query).all()))
