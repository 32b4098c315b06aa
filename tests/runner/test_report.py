"""The report renders from a store: tables and embedded images in self-contained HTML."""
import base64
import json
import re

from runner.cli.main import main
from runner.report.report import best_results

from .test_cli import GOOD, write


def _store(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db), "--json"]) == 0
    assert main(["run", str(write(tmp_path, GOOD.replace("kc = 64", "kc = 32"), "b.toml")), "--db", str(db)]) == 0
    capsys.readouterr()
    return db


def test_html_report_has_the_tables_and_the_images(tmp_path, capsys):
    db = _store(tmp_path, capsys)
    html, plots = tmp_path / "out" / "report.html", tmp_path / "plots"
    assert main(["report", "--db", str(db), "--html", str(html), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "4 strategies: 4 ok." in out and "6x16-u2" in out
    text = html.read_text()
    assert "<h2>Top 4 strategies</h2>" in text and text.count("<tr>") >= 6 and "6x16-u2" in text
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # tile heatmap, GFLOP/s vs kc, knob effects
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http" not in text.replace("http-equiv", "")  # readable offline: nothing fetched
    files = sorted(p.name for p in plots.iterdir())
    assert len(files) == 3 and all((plots / f).read_bytes()[:4] == b"\x89PNG" for f in files)


def test_report_json_and_failures(tmp_path, capsys):
    db = _store(tmp_path, capsys)
    assert main(["report", "--db", str(db), "--json", "--top", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["statuses"] == {"ok": 4} and len(data["top"]) == 2
    assert float(data["top"][0]["of peak"].rstrip("%")) >= float(data["top"][1]["of peak"].rstrip("%"))


#: A stored row of one strategy, as report reads it (id, status, phase and correct vary per test).
BASE = {"strategy_hash": "h", "target": "host", "host_cpu": "cpu", "strategy_json": json.dumps(
    {"name": "x", "kernel": {"mr": 4, "nr": 8, "kc": 64, "dtype": "f32"}, "steps": [], "llvm": {}})}


def test_best_result_prefers_full_length_figures():
    rows = [{**BASE, "id": 1, "status": "ok", "phase": "screen", "correct": 1},
            {**BASE, "id": 2, "status": "ok", "phase": "final", "correct": 1},
            {**BASE, "id": 3, "status": "crash", "phase": "screen", "correct": None}]
    (best,) = best_results(rows)
    assert best["id"] == 2 and best["knobs"]["mr"] == 4


def test_missing_database_is_bad_input(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no such results database" in capsys.readouterr().err


def test_gemm_results_are_reported_apart_from_micro_kernels(tmp_path, capsys):
    from .test_gemm_experiment import GEMM
    db = _store(tmp_path, capsys)
    assert main(["run", str(write(tmp_path, GEMM, "g.toml")), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["report", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["statuses"] == {"ok": 4}  # the micro-kernels only
    assert main(["report", "--db", str(db), "--json", "--kind", "gemm"]) == 0
    assert all("@" in row["strategy"] for row in json.loads(capsys.readouterr().out)["top"])


def test_a_hash_whose_latest_verification_was_wrong_is_never_shown_ok():
    rows = [{**BASE, "id": 1, "status": "ok", "phase": "final", "correct": 1},
            {**BASE, "id": 2, "status": "wrong_answer", "phase": "full", "correct": 0},
            {**BASE, "id": 3, "status": "crash", "phase": "screen", "correct": None}]
    (best,) = best_results(rows)
    assert best["id"] == 2 and best["status"] == "wrong_answer"
    rows.append({**BASE, "id": 4, "status": "ok", "phase": "screen", "correct": 1})  # verified right again since
    (best,) = best_results(rows)
    assert best["status"] == "ok"
