"""Every file the harness reads back and every environment value is distrusted: one line, exit 2, nothing
changed; output that shows stored text escapes it for where it goes."""
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from runner.cli.main import main

from .jsonl import parse
from .test_cli import GOOD, write

CLI = [sys.executable, "-m", "runner.cli"]


def one_line_exit_2(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("env, needle", [
    ({"UKL_HOST_ISA": "avx512"}, "UKL_HOST_ISA: must be one of ['avx2'], got 'avx512'"),
    ({"UKL_PLUGINS": "../../etc/passwd"}, "UKL_PLUGINS: '../../etc/passwd' is not a module name"),
    ({"UKL_PLUGINS": "no_such_module_here"}, "UKL_PLUGINS: cannot import 'no_such_module_here'"),
])
@pytest.mark.parametrize("command", [["peak"], ["report", "--db", "{db}"], ["run", "{config}"]])
def test_a_bad_environment_value_is_the_same_one_line_from_every_command(tmp_path, env, needle, command):
    config = write(tmp_path, GOOD)
    args = [a.format(db=tmp_path / "none.sqlite", config=config) for a in command]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    one_line_exit_2(proc, needle)
    assert not (tmp_path / "none.sqlite").exists()


def test_peak_offers_only_the_dtypes_it_can_measure(capsys):
    assert main(["peak", "--dtype", "u8s8"]) == 2
    assert "invalid choice: 'u8s8'" in capsys.readouterr().err


def _failed_reproducer(tmp_path, capsys):
    """A real reproducer: the sabotaged kernel of tests.runner.sabotage_steps computes a wrong answer."""
    from .sabotage_steps import PLUGIN
    os.environ["UKL_PLUGINS"] = PLUGIN
    config = write(tmp_path, textwrap.dedent("""
        [experiment]
        name = "wrong"
        [[strategy]]
        name = "wrong"
        mr = 4
        nr = 8
        kc = 16
        steps = ["tile_k", "test_skip_last_k", "vectorize", "hoist_accumulators", "lower_contraction",
                 "lower_transfers"]
    """), "bad.toml")
    try:
        assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite"), "--json"]) == 1
    finally:
        del os.environ["UKL_PLUGINS"]
    folder = next(r["reproducer"] for r in parse(capsys.readouterr().out)[1] if r["status"] == "wrong_answer")
    return tmp_path / folder


DAMAGE = {
    "no outcome": lambda f: (f / "outcome.json").unlink(),
    "a list for an object": lambda f: (f / "problem.json").write_text("[1, 2]"),
    "a target without a name": lambda f: (f / "target.json").write_text('{"cpu": "znver3"}'),
    "an extra key": lambda f: (f / "outcome.json").write_text('{"status": "wrong_answer", "error": "", "x": 1}'),
    "an unknown status": lambda f: (f / "outcome.json").write_text('{"status": "fine", "error": ""}'),
    "a FIFO": lambda f: ((f / "strategy.json").unlink(), os.mkfifo(f / "strategy.json")),
    "a link to /dev/zero": lambda f: ((f / "problem.json").unlink(), os.symlink("/dev/zero", f / "problem.json")),
    "not JSON": lambda f: (f / "strategy.json").write_text("{"),
    "a strategy of the wrong type": lambda f: (f / "strategy.json").write_text('{"name": 3, "kernel": {}}'),
    "an unknown step": lambda f: (f / "strategy.json").write_text(json.dumps(
        {"name": "x", "kernel": {"mr": 4, "nr": 8, "kc": 16, "dtype": "f32"}, "steps": ["from_a_plugin"]})),
    "a problem without a kind": lambda f: (f / "problem.json").write_text('{"mr": 4}'),
    "a field the kind lacks": lambda f: (f / "problem.json").write_text(
        '{"kind": "microkernel", "mr": 4, "nr": 8, "kc": 16, "dtype": "f32", "colour": "red"}'),
    "too many threads": lambda f: (f / "problem.json").write_text(json.dumps(
        {"kind": "gemm", **__import__("kernels_mlir.gemm").gemm.GemmSpec(8, 8, 8, threads=64).to_dict()})),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_reproducer_is_one_line_and_changes_nothing(tmp_path, capsys, damage):
    folder = _failed_reproducer(tmp_path, capsys)
    DAMAGE[damage](folder)
    before = {p.name: (p.lstat().st_mode, p.lstat().st_mtime_ns) for p in folder.rglob("*")}
    proc = subprocess.run([*CLI, "repro", str(folder)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "UKL_PLUGINS": "tests.runner.sabotage_steps", "PYTHONPATH": os.getcwd()})
    one_line_exit_2(proc)
    assert {p.name: (p.lstat().st_mode, p.lstat().st_mtime_ns) for p in folder.rglob("*")} == before


def test_a_replayed_name_cannot_drive_the_terminal(tmp_path, capsys):
    folder = _failed_reproducer(tmp_path, capsys)
    strategy = json.loads((folder / "strategy.json").read_text())
    (folder / "strategy.json").write_text(json.dumps({**strategy, "name": "x\x1b]0;owned\x07\x1b[2J\nok (verified)"}))
    proc = subprocess.run([*CLI, "repro", str(folder)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "UKL_PLUGINS": "tests.runner.sabotage_steps", "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 1 and "\x1b" not in proc.stdout and proc.stdout.count("\n") == 1
    assert "\\x1b]0;owned\\x07" in proc.stdout


def test_report_json_is_strict_and_stored_strategies_are_distrusted(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db)]) == 0
    capsys.readouterr()
    con = sqlite3.connect(db)
    first, second = (h for (h,) in con.execute("SELECT strategy_hash FROM results ORDER BY id"))
    record = json.loads(con.execute("SELECT record_json FROM results WHERE strategy_hash = ?", (first,)).fetchone()[0])
    con.execute("UPDATE results SET record_json = ? WHERE strategy_hash = ?",
                (json.dumps({**record, "cv": math.nan, "gflops_max": math.inf}), first))
    con.execute("UPDATE results SET strategy_json = ? WHERE strategy_hash = ?", (json.dumps(
        {"name": "x", "kernel": {"mr": 4, "nr": 8, "kc": 16, "dtype": "f32"}, "steps": ["from_a_plugin"]}), second))
    con.commit()
    assert main(["report", "--db", str(db), "--json"]) == 0

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    lines = [json.loads(line, parse_constant=refuse) for line in capsys.readouterr().out.splitlines()]
    damaged = next(x for x in lines if x.get("strategy_hash") == first)
    assert damaged["cv"] is None and damaged["gflops_max"] is None
    assert main(["compare", second, first, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown step 'from_a_plugin'" in err and "UKL_PLUGINS" in err


def test_markdown_cells_escape_html():
    from runner.report.display import markdown_cell
    assert markdown_cell("<script>alert(1)</script> | vector<8xf32>") == \
        "&lt;script&gt;alert(1)&lt;/script&gt; \\| vector&lt;8xf32&gt;"


def test_report_renders_every_row_a_store_can_hold(tmp_path, capsys):
    """NULL where NaN was written, a non-JSON strategy, an unknown phase, a crossover with no points and
    a name that matplotlib would read as math: the report lists them, marking what is missing."""
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db)]) == 0
    capsys.readouterr()
    con = sqlite3.connect(db)
    columns = [c[1] for c in con.execute("PRAGMA table_info(results)")]
    (row,) = con.execute("SELECT * FROM results ORDER BY id LIMIT 1").fetchall()
    damaged = [{"gflops": None, "candidate_key": "nullfigs"}, {"strategy_json": "{not json", "candidate_key": "nojson"},
               {"phase": "someday", "candidate_key": "phase"}, {"name": "$\\undefinedmacro$", "candidate_key": "math",
                                                                 "record_json": "[]"}]
    for change in damaged:
        values = {**dict(zip(columns, row)), "id": None, **change}
        con.execute(f"INSERT INTO results ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [values[c] for c in columns])
    con.execute("INSERT INTO crossovers (run_id, measured_at, experiment, target, host_cpu, dtype, routes_json, "
                "points_json, boundary_json) VALUES (1, 'now', 'x', 'host', 'cpu', 'f32', '[\"a\", \"b\"]', '[]', '{}')")
    con.commit()
    html, plots = tmp_path / "report.html", tmp_path / "plots"
    assert main(["report", "--db", str(db), "--html", str(html), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "$\\undefinedmacro$" in out and "6 results" in out
    null_row = next(line for line in out.splitlines() if line.split()[1:2] == ["nullfigs"])
    assert " ? " in null_row  # the missing figure is marked, not invented
    assert "$\\undefinedmacro$" in html.read_text() and list(plots.iterdir())
    assert main(["report", "--db", str(db), "--json"]) == 0
    assert len(parse(capsys.readouterr().out)[1]) == 6


@pytest.mark.parametrize("command", [["mca", "experiments/lowp_host.toml", "--target", "host"],
                                     ["asm", "experiments/lowp_host.toml", "--target", "host"],
                                     ["crossover", "experiments/crossover_int8_fc.toml", "--db", "{db}"]])
def test_an_instruction_the_host_lacks_is_refused_before_llvm_could_abort(tmp_path, command):
    """On an AVX2 host (any host, capped), LLVM cannot select vdpbf16ps or vpdpbusd and aborts the
    process: every command that compiles for the host refuses first, naming step, instruction, feature."""
    args = [a.format(db=tmp_path / "r.sqlite") for a in command]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UKL_HOST_ISA": "avx2"})
    one_line_exit_2(proc, "steps[4] (dot_product): ", " needs avx512", "it compiles for --target ")
    assert not (tmp_path / "r.sqlite").exists()
