"""Results are committed one by one: SIGKILL between strategies loses nothing already measured."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner.store.results import SCHEMA_VERSION, Store, StoreError
from transforms.strategy import Strategy

from .test_cli import GOOD


@pytest.mark.slow
def test_sigkill_after_first_result_keeps_it(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(GOOD.replace("min_sample_seconds = 0.002", "min_sample_seconds = 0.05"))
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(db), "--json"],
                            stdout=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline())["type"] == "context"
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


def _store_from(tmp_path, dump: str):
    path = tmp_path / "old.sqlite"
    sqlite3.connect(path).executescript((Path(__file__).parent / "data" / dump).read_text())
    return path


def test_a_store_written_by_the_previous_release_migrates_keeping_every_row(tmp_path):
    """data/store_v1.sql: `ukl run` (micro-kernels, a GEMM) and `ukl sweep` by the release before schema versions."""
    path = _store_from(tmp_path, "store_v1.sql")
    before = sqlite3.connect(path).execute("SELECT id, name, status, gflops, phase, kind FROM results ORDER BY id").fetchall()
    old_gemm_hashes = {n: h for n, h in sqlite3.connect(path).execute(
        "SELECT name, strategy_hash FROM results WHERE kind = 'gemm'")}
    with Store(path) as store:
        rows = list(store.rows())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [(r["id"], r["name"], r["status"], r["gflops"], r["phase"], r["kind"]) for r in rows] == before
    gemm = [r for r in rows if r["kind"] == "gemm"]
    assert len(gemm) == 2 and {r["name"]: r["gemm_hash"] for r in gemm} == old_gemm_hashes
    for r in rows:  # the micro-kernel's hash is back in strategy_hash, whatever the row's kind
        assert r["strategy_hash"] == Strategy.from_dict(json.loads(r["strategy_json"])).hash
        assert r["workload_hash"] is not None
    shapes = {json.loads(p)["m"] for (p,) in db.execute("SELECT problem_json FROM workloads WHERE kind = 'gemm'")}
    assert shapes == {64, 33}
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Store(path):  # opening again changes nothing
        pass
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM results").fetchone()[0] == len(before)


def test_new_records_keep_every_field(tmp_path, host):
    from runner.measure.lifecycle import Candidate, evaluate
    from ..conftest import FAST_TIMING, best_host_strategy
    record = evaluate(Candidate.microkernel(best_host_strategy(64), host), FAST_TIMING)
    with Store(tmp_path / "r.sqlite") as store:
        store.add(store.start_run("test", host), record, host)
        (row,) = store.rows()
    assert json.loads(row["record_json"]) == {**json.loads(json.dumps(record.to_json())), "phase": "full"}
    assert row["vector_bits"] == record.vector_bits and json.loads(row["peak_samples_json"]) == list(
        record.peak.gflops_samples)


def test_a_database_of_another_tool_is_refused_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).executescript("CREATE TABLE results (id INTEGER, score REAL); INSERT INTO results VALUES (1, 2.0);")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="has a 'results' table that is not a ukl store's: left untouched"):
        Store(path)
    assert path.read_bytes() == before


def test_the_cli_refuses_another_tools_database_in_one_line(tmp_path, capsys):
    from runner.cli.main import main
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).executescript("CREATE TABLE results (id INTEGER, score REAL);")
    assert main(["report", "--db", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a ukl store's: left untouched" in err


def test_a_store_of_schema_4_migrates_its_keys_into_a_column_keeping_every_row(tmp_path, capsys):
    """data/store_v4.sql: `ukl run` of a micro-kernel and of a 33x17x9 GEMM by the release before kinds
    had a registry (schema 4). Keys move into candidate_key; the same config still gives the same hashes."""
    path = _store_from(tmp_path, "store_v4.sql")
    before = sqlite3.connect(path).execute("SELECT * FROM results ORDER BY id").fetchall()
    with Store(path) as store:
        rows = list(store.rows())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [tuple(r.values())[:len(before[0])] for r in rows] == before  # every row and column kept
    keys = {r["kind"]: r["candidate_key"] for r in rows}
    assert keys == {"microkernel": rows[0]["strategy_hash"], "gemm": rows[1]["gemm_hash"]}
    index = db.execute("SELECT sql FROM sqlite_master WHERE name = 'results_once_per_study'").fetchone()[0]
    assert "candidate_key" in index and "coalesce" not in index.lower()
    from runner.cli.main import main
    config = tmp_path / "g.toml"
    config.write_text('[experiment]\nname = "v4-gemm"\nkind = "gemm"\n[timing]\nmin_sample_seconds = 0.002\n'
                      'samples = 10\n[gemm]\nshapes = [[33, 17, 9]]\n[[strategy]]\nname = "4x8"\nmr = 4\nnr = 8\n'
                      'kc = 32\n')
    assert main(["run", str(config), "--db", str(path), "--json"]) == 0
    (now,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1:]
    assert (now["strategy_hash"], now["gemm_hash"]) == (rows[1]["strategy_hash"], rows[1]["gemm_hash"])
