"""An LLVM abort during `ukl run` is a compile_error record with its reproducer, and `ukl repro`
replays it, each in a process that survives it."""
import os
import sqlite3
import subprocess
import sys
import textwrap

from .sabotage_steps import PLUGIN

CONFIG = textwrap.dedent("""
    [experiment]
    name = "aborts"
    [[strategy]]
    name = "aborts"
    mr = 4
    nr = 8
    kc = 32
    steps = [{ step = "tile_k", size = 1 }, "test_unselectable_intrinsic", "vectorize", "lower_contraction",
             "lower_transfers"]
    [[strategy]]
    name = "fine"
    mr = 4
    nr = 8
    kc = 32
""")


def _ukl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UKL_PLUGINS": PLUGIN, "PYTHONPATH": os.getcwd()})


def test_an_llvm_abort_is_recorded_as_compile_error_with_a_reproducer(tmp_path):
    config = tmp_path / "aborts.toml"
    config.write_text(CONFIG)
    db = tmp_path / "r.sqlite"
    proc = _ukl("run", str(config), "--db", str(db))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    rows = dict(sqlite3.connect(db).execute("SELECT name, status FROM results").fetchall())
    assert rows["aborts"] == "compile_error" and rows["fine"] in ("ok", "disturbed")
    (error,) = sqlite3.connect(db).execute("SELECT error FROM results WHERE name = 'aborts'").fetchone()
    assert "LLVM ERROR: Cannot select: intrinsic %llvm.aarch64.crc32b" in error
    (folder,) = (tmp_path / "repro").iterdir()
    assert (folder / "stages" / "91-llvm-ir.ll").read_text().count("llvm.aarch64.crc32b") >= 1
    replay = _ukl("repro", str(folder))
    assert replay.returncode == 1 and "compile_error" in replay.stdout and "Cannot select" in replay.stdout
