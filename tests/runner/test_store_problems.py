"""Every database problem is one line and exit status 2, with the file left as it was (or, for a
write that fails midway, every row written before kept)."""
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .test_cli import GOOD

RUN = [sys.executable, "-m", "runner.cli"]


def ukl(*args, **kwargs):
    return subprocess.run([*RUN, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, **kwargs)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(GOOD)
    return path


def one_line(proc, fragment):
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_text_file_is_not_a_database(tmp_path, config, command):
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes\n" * 50)
    before = db.read_bytes()
    args = ["run", str(config), "--db", str(db)] if command == "run" else ["report", "--db", str(db)]
    one_line(ukl(*args), "is not a SQLite database: left untouched")
    assert db.read_bytes() == before


def test_a_directory_is_not_a_database(tmp_path, config):
    one_line(ukl("run", str(config), "--db", str(tmp_path)), "is a directory, not a results database")


def test_a_corrupted_database_is_left_untouched(tmp_path, config):
    db = tmp_path / "r.sqlite"
    assert ukl("run", str(config), "--db", str(db)).returncode == 0
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * 3996  # the schema's page, past the file header, is garbage
    db.write_bytes(bytes(data))
    for path in tmp_path.glob("r.sqlite-*"):
        path.unlink()
    one_line(ukl("report", "--db", str(db)), "is corrupted")
    assert db.read_bytes() == bytes(data)


def test_a_read_only_database_refuses_writes_and_read_only_commands_still_work(tmp_path, config):
    """chattr +i makes the file immutable even for root (as a read-only mount would)."""
    db = tmp_path / "r.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "store_v1.sql", tmp_path / "dump.sql")
    sqlite3.connect(db).executescript((tmp_path / "dump.sql").read_text())
    before = db.read_bytes()
    subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        one_line(ukl("run", str(config), "--db", str(db)), "is read-only")
        report = ukl("report", "--db", str(db), "--json")  # an older schema, migrated in memory only
        assert report.returncode == 0, report.stderr
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert db.read_bytes() == before


def test_another_writer_holding_the_lock_for_a_while_is_waited_for(tmp_path, config):
    db = tmp_path / "r.sqlite"
    assert ukl("run", str(config), "--db", str(db)).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(2.0, lambda: holder.execute("COMMIT")).start()
    started = time.monotonic()
    proc = ukl("run", str(config), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2.0


@pytest.mark.slow
def test_a_lock_held_longer_than_the_wait_is_one_line(tmp_path, config):
    db = tmp_path / "r.sqlite"
    assert ukl("run", str(config), "--db", str(db)).returncode == 0
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        one_line(ukl("run", str(config), "--db", str(db)), "is locked by another writer (waited 10 s)")
    finally:
        holder.execute("COMMIT")
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2


def test_a_full_disk_keeps_every_row_written_before(tmp_path, config):
    """The file may not grow past a limit (RLIMIT_FSIZE, as a full disk stops it): the run stops with one
    line, and the rows committed before are all there."""
    db = tmp_path / "r.sqlite"
    assert ukl("run", str(config), "--db", str(db)).returncode == 0
    size = db.stat().st_size + sum(p.stat().st_size for p in tmp_path.glob("r.sqlite-*"))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 8192, size + 8192))
    proc = None
    for _ in range(20):  # each run adds rows until the limit is reached
        proc = subprocess.run([*RUN, "run", str(config), "--db", str(db)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()}, preexec_fn=limit)
        if proc.returncode != 0:
            break
    one_line(proc, "could not be written")
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 2


def test_two_processes_creating_one_new_database_both_succeed(tmp_path):
    script = ("import sys; from runner.store.results import Store\n"
              "with Store(sys.argv[1]) as s: pass\n")
    for trial in range(8):
        db = tmp_path / f"new{trial}.sqlite"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(db)], stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()}) for _ in range(2)]
        for proc in procs:
            assert proc.wait() == 0, proc.stderr.read()
        assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] > 0


def test_a_symlinked_side_file_is_not_followed(tmp_path, config):
    db = tmp_path / "r.sqlite"
    outside = tmp_path / "elsewhere"
    (tmp_path / "r.sqlite-wal").symlink_to(outside)
    one_line(ukl("run", str(config), "--db", str(db)), "is a symbolic link")
    assert not outside.exists() and not db.exists()
