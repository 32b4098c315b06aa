"""Results are committed one by one: SIGKILL between strategies loses nothing already measured."""
import json
import os
import signal
import sqlite3
import subprocess
import sys

from runner.store import Store

from .test_cli import GOOD


def test_sigkill_after_first_result_keeps_it(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(GOOD.replace("min_sample_seconds = 0.002", "min_sample_seconds = 0.05"))
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(db), "--json"],
                            stdout=subprocess.PIPE, text=True)
    first = json.loads(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = con.execute("SELECT name, strategy_hash, gflops FROM results").fetchall()
    assert rows[0] == (first["name"], first["strategy_hash"], first["gflops"])
    assert len(rows) <= 2

    # The store stays usable: a later run appends without touching what is there.
    with Store(db) as store:
        before = list(store.rows())
    subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(db), "--json"],
                   check=True, capture_output=True)
    with Store(db) as store:
        after = list(store.rows())
    assert after[:len(before)] == before and len(after) == len(before) + 2
