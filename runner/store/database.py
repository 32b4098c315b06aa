"""Where results live: a SQLite file (the embedded default) or a database server named by URL.

`--db` takes either. A path opens SQLite exactly as before (sqlite3 connections made by us, so the
busy wait, read-only opening and the file checks stay ours); a `postgresql://` URL opens the server
through psycopg 3. Everything above this module speaks SQLAlchemy and does not care which it is.
"""
from __future__ import annotations

import argparse
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

#: How long to wait for another SQLite writer's lock before saying so (seconds).
LOCK_WAIT_SECONDS = 10.0
#: How long a server that stopped answering is retried (with backoff) before the command gives up.
RECONNECT_SECONDS = 60.0
#: URL schemes taken as PostgreSQL; they all go through psycopg 3 (the pinned driver).
_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg")

T = TypeVar("T")


class StoreError(ValueError):
    """A results database that cannot be used as one; str() is the one line the CLI prints."""


@dataclass(frozen=True)
class Database:
    """A `--db` argument: a SQLite path, or a server URL."""

    text: str

    @property
    def is_url(self) -> bool:
        return "://" in self.text

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a server."""
        return None if self.is_url else Path(self.text)

    @property
    def url(self) -> URL:
        """The SQLAlchemy URL (PostgreSQL always through psycopg 3)."""
        if not self.is_url:
            return URL.create("sqlite", database=self.text)
        url = make_url(self.text)
        if url.drivername in _POSTGRES:
            return url.set(drivername="postgresql+psycopg")
        raise StoreError(f"{self.shown}: unsupported database URL (give a SQLite path or a postgresql:// URL)")

    @property
    def url_text(self) -> str:
        """The URL with its password, for a library that connects by itself (Optuna)."""
        return self.url.render_as_string(hide_password=False)

    @property
    def shown(self) -> str:
        """How messages name it: the path, or the URL without its password."""
        return self.text if not self.is_url else make_url(self.text).render_as_string(hide_password=True)

    def exists(self) -> bool:
        """False only for a SQLite file that is not there (a server is asked when opened)."""
        return self.is_url or Path(self.text).exists()

    @property
    def repro_root(self) -> Path:
        """Where failed candidates' reproducers go: beside a SQLite file, else under results/."""
        return (self.path.parent if self.path is not None else Path("results")) / "repro"

    def __str__(self) -> str:
        return self.shown


def database_arg(text: str) -> Database:
    """argparse type of --db: a path or a URL (checked for a known scheme here, connected later)."""
    database = Database(text)
    try:
        database.url
    except (StoreError, sqlalchemy.exc.ArgumentError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return database


def as_database(db: "Database | Path | str") -> Database:
    return db if isinstance(db, Database) else Database(str(db))


def sqlite_engine(connect: Callable[[], sqlite3.Connection]) -> Engine:
    """One sqlite3 connection (ours) behind SQLAlchemy. Transactions are begun explicitly, so a
    migration can take the write lock up front (execution option `begin="BEGIN IMMEDIATE"`), and a
    pragma that must run outside one can (`begin=None`)."""
    engine = sqlalchemy.create_engine("sqlite://", creator=connect, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, says when a transaction starts

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        statement = connection.get_execution_options().get("begin", "BEGIN")
        if statement:
            connection.exec_driver_sql(statement)
    return engine


def server_engine(database: Database) -> Engine:
    """A pooled engine for a server; connections are checked before use (pre-ping), so one that
    the server dropped is replaced instead of failing the next statement."""
    return sqlalchemy.create_engine(database.url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                                    connect_args={"connect_timeout": 10})


def sqlite_problem(shown: str, exc: BaseException) -> str:
    """One line saying what is wrong with a SQLite database, from SQLite's error."""
    text = str(exc)
    known = {"file is not a database": "is not a SQLite database: left untouched",
             "malformed": "is corrupted (SQLite: database disk image is malformed): left untouched",
             "unable to open": "cannot be opened as a database (a directory, or a folder without write access?)",
             "readonly": "is read-only: this command writes its results there",
             "locked": f"is locked by another writer (waited {LOCK_WAIT_SECONDS:g} s): try again when it is done",
             "disk is full": "cannot grow: the disk is full (every result written before is kept)",
             "disk I/O error": "could not be written (disk I/O error; every result written before is kept)"}
    reason = next((why for key, why in known.items() if key in text), f"failed: {text}")
    return f"{shown}: {reason}"


def server_problem(shown: str, exc: BaseException) -> str:
    """One line from a server's error (its first line: psycopg adds hints below it); behind a
    library's own wrapper (Optuna's StorageInternalError), the driver's error it wraps."""
    cause = exc
    while cause is not None and not isinstance(cause, sqlalchemy.exc.DBAPIError):
        cause = cause.__cause__ or cause.__context__
    exc = cause or exc
    orig = getattr(exc, "orig", None) or exc
    first = next((line.strip() for line in str(orig).splitlines() if line.strip()), type(orig).__name__)
    return f"{shown}: {first}"


def is_disconnect(exc: BaseException) -> bool:
    """True for a server that went away or cannot be reached (worth retrying), not for a bad statement."""
    import optuna
    if isinstance(exc, optuna.exceptions.StorageInternalError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (sqlalchemy.exc.OperationalError,
                                                              sqlalchemy.exc.InterfaceError))
    return False


def with_reconnects(action: Callable[[], T], shown: str, patience: float = RECONNECT_SECONDS,
                    on_wait: Callable[[str], None] | None = None) -> T:
    """`action()`, retried with exponential backoff (0.25 s doubling to 8 s) while the server is
    unreachable; after `patience` seconds of failures, StoreError with one line. Whatever was
    committed before stays committed: an action is one transaction, repeated whole."""
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise StoreError(f"{server_problem(shown, exc)} (no answer for {patience:g} s; every result "
                                 "written before is kept: start the worker again, with --resume, once the "
                                 "database is back)") from None
            if on_wait is not None:
                on_wait(f"{server_problem(shown, exc)}: retrying in {delay:g} s")
            time.sleep(delay)
            delay = min(2 * delay, 8.0)
