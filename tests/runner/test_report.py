"""The report renders from a store: tables and embedded images in self-contained HTML."""
import base64
import json
import re

import pytest

from runner.cli.main import main
from runner.report.report import best_results

from .jsonl import of_type, one, parse, results
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
    assert "4 results (4 microkernel): 4 ok." in out and "6x16-u2" in out
    text = html.read_text()
    assert "<h2>microkernel: the best 4</h2>" in text and text.count("<tr") >= 6 and "6x16-u2" in text
    assert text.count('<tr class="full">') == 4  # `ukl run` results: full-length figures
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4  # fraction of peak, tile heatmap, GFLOP/s vs kc, knob effects
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http" not in text.replace("http-equiv", "")  # readable offline: nothing fetched
    files = sorted(p.name for p in plots.iterdir())
    assert len(files) == 4 and all((plots / f).read_bytes()[:4] == b"\x89PNG" for f in files)


def test_report_json_and_failures(tmp_path, capsys):
    db = _store(tmp_path, capsys)
    assert main(["report", "--db", str(db), "--json", "--top", "2"]) == 0
    context, top, (summary,) = parse(capsys.readouterr().out)
    assert context["command"] == "report" and summary["statuses"] == {"ok": 4} and len(top) == 2
    assert top[0]["gflops"] >= top[1]["gflops"]


def test_run_and_report_json_share_keys_and_numeric_types(tmp_path, capsys):
    """One schema: a result reads the same from `ukl run --json` and `ukl report --json` (raw numbers,
    full hashes), after one context header each."""
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db), "--json"]) == 0
    run_context, ran, _ = parse(capsys.readouterr().out)
    assert main(["report", "--db", str(db), "--json"]) == 0
    report_context, reported, _ = parse(capsys.readouterr().out)
    assert set(run_context) == set(report_context) and run_context["host_cpu"] == report_context["host_cpu"]
    by_name = {r["name"]: r for r in reported}
    for r in ran:
        other = by_name[r["name"]]
        assert set(other) == set(r) | {"phase"}
        for key, value in r.items():
            assert type(other[key]) is type(value), key
        assert len(r["strategy_hash"]) == 16 and other["strategy_hash"] == r["strategy_hash"]
        assert isinstance(r["gflops"], float) and isinstance(r["cv"], float) and 0 < r["fraction_of_peak"] <= 1


#: A stored row of one strategy, as report reads it (id, status, phase and correct vary per test).
BASE = {"strategy_hash": "h", "candidate_key": "h", "kind": "microkernel", "target": "host", "host_cpu": "cpu", "strategy_json": json.dumps(
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


def test_every_kind_is_reported_in_its_own_table_without_being_asked(tmp_path, capsys):
    from .test_gemm_experiment import GEMM
    db = _store(tmp_path, capsys)
    assert main(["run", str(write(tmp_path, GEMM, "g.toml")), "--db", str(db), "--json"]) == 0
    ran = results(capsys.readouterr().out)
    assert main(["report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    micro, gemm = out.split("\nmicrokernel:\n")[1].split("\ngemm:\n")
    gemm, summaries = gemm.split("\ngemm, best per traversal:")
    assert "6x16-u2" in micro and "@" not in micro
    header = gemm.splitlines()[0]
    assert "M x N x K" in header and "ours/OpenBLAS [95% CI]" in header and "ours/BLIS [95% CI]" in header
    for r in ran:  # each GEMM's ratio to each baseline, with its interval, on its row
        row = next(line for line in gemm.splitlines() if line.startswith(r["name"]))
        for b in r["baselines"]:
            assert f"{b['ratio']:.3f} [{b['ratio_ci'][0]:.3f}, {b['ratio_ci'][1]:.3f}]" in row
    shapes = [line.split()[1] for line in gemm.splitlines()[2:] if line.strip()]
    assert shapes == sorted(shapes, key=shapes.index) and len(set(shapes)) == 2  # ranked within each shape
    per_traversal, per_blocking = summaries.split("gemm, best per blocking:")
    assert [line.split()[:2] for line in per_traversal.splitlines()[3:] if line.strip()] == [
        ["64x64x64", "blis"], ["97x131x77", "blis"]]  # one best per shape and traversal
    assert "blis 24/64/64 unbounded" in per_blocking
    from runner.report.report import build_report
    (gemm_section,) = [s for s in build_report(db, 10).sections if s.kind == "gemm"]
    assert {"traversal", "mc", "nc", "pack_bytes", "inner", "threads"} <= set(gemm_section.results[0]["knobs"])
    assert main(["report", "--db", str(db), "--json"]) == 0
    assert parse(capsys.readouterr().out)[2][-1]["statuses"] == {"ok": 4 + len(ran)}
    assert main(["report", "--db", str(db), "--json", "--kind", "gemm"]) == 0
    gemms = results(capsys.readouterr().out)
    assert gemms and all("@" in r["name"] and len(r["gemm_hash"]) == 16 for r in gemms)
    assert main(["report", "--db", str(db), "--kind", "conv9d"]) == 2
    assert "--kind: unknown problem kind 'conv9d'" in capsys.readouterr().err


def test_a_hash_whose_latest_verification_was_wrong_is_never_shown_ok():
    rows = [{**BASE, "id": 1, "status": "ok", "phase": "final", "correct": 1},
            {**BASE, "id": 2, "status": "wrong_answer", "phase": "full", "correct": 0},
            {**BASE, "id": 3, "status": "crash", "phase": "screen", "correct": None}]
    (best,) = best_results(rows)
    assert best["id"] == 2 and best["status"] == "wrong_answer"
    rows.append({**BASE, "id": 4, "status": "ok", "phase": "screen", "correct": 1})  # verified right again since
    (best,) = best_results(rows)
    assert best["status"] == "ok"


def test_knob_effects_are_paired_within_the_tile_not_pooled():
    """`legalize` confounded with the tile, as in the sweep the issue describes: on only at nr = 16, where
    every kernel does well. Pooled, it looks like 0.93 against 0.58; paired (same tile, all else equal),
    it is 0.932 against 0.916. The figure's data must be the paired one."""
    from runner.report.report import paired_effects
    from runner.search.space import defaults
    rows = []
    def row(nr, legalize, unroll, fraction):
        knobs = {**defaults(), "mr": 6, "nr": nr, "legalize": legalize, "unroll": unroll}
        rows.append({"target": "host", "host_cpu": "cpu", "knobs": knobs, "fraction_of_peak": fraction})
    for unroll, delta in ((1, 0.0), (4, 0.01)):
        row(8, False, unroll, 0.58 + delta)         # nr = 8: legalize cannot apply
        row(16, False, unroll, 0.916 + delta)
        row(16, True, unroll, 0.932 + delta)
    pooled_on = [r["fraction_of_peak"] for r in rows if r["knobs"]["legalize"]]
    pooled_off = [r["fraction_of_peak"] for r in rows if not r["knobs"]["legalize"]]
    assert sum(pooled_on) / len(pooled_on) - sum(pooled_off) / len(pooled_off) > 0.15  # what a marginal shows
    (legalize,) = [e for e in paired_effects(rows) if e.knob == "legalize"]
    assert legalize.baseline == "False" and legalize.value == "True" and len(legalize.ratios) == 2
    assert legalize.median == pytest.approx(0.932 / 0.916, rel=1e-3)  # the within-tile difference, +1.7%
    (unroll,) = [e for e in paired_effects(rows) if e.knob == "unroll"]
    assert len(unroll.ratios) == 3  # every tile and legalize setting pairs unroll 1 with 4


def test_report_is_titled_by_its_experiment_and_figures_say_what_they_show(tmp_path, capsys):
    db = _store(tmp_path, capsys)
    html = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--html", str(html)]) == 0
    text = html.read_text()
    assert "<title>ukernel-lab report: tiny</title>" in text  # GOOD's experiment name, not the file's
    from runner.report.report import build_report, context_label
    report = build_report(db, 5)
    assert context_label(report.results) == "tiny; target host; f32; kc 32, 64"


def test_optuna_draws_its_own_plots_from_stored_results():
    """Optuna's visualisations (not hand-written look-alikes) from a study rebuilt from results."""
    from runner.report.optuna_plots import MIN_TRIALS, optuna_figures, study_from
    from runner.search.space import defaults
    rows = [{"id": i, "gflops": 100.0 + 10 * (i % 3) + i, "fraction_of_peak": 0.5,
             "knobs": {**defaults(), "mr": 4 + 2 * (i % 3), "unroll": [1, 4][i % 2]}} for i in range(MIN_TRIALS)]
    study = study_from(rows)
    assert len(study.trials) == MIN_TRIALS and set(study.best_params) == {"mr", "unroll"}
    assert study.best_value == max(r["gflops"] for r in rows)
    figures = optuna_figures(rows)
    assert [f[0] for f in figures] == ["optuna-history.png", "optuna-importances.png", "optuna-parallel.png"]
    assert study_from(rows[:MIN_TRIALS - 1]) is None


def test_a_sweeps_rejections_are_explained_in_the_report(tmp_path, capsys):
    """The sweep's one-line reasons, counted, reach the store and the report."""
    from runner.store.results import Store
    config = write(tmp_path, GOOD.replace("[defaults]", "[space]\nmr = [4, 6]\nnr = [6, 16]\nlegalize = [true]\n"
                                          "[defaults]"))
    db = tmp_path / "r.sqlite"
    assert main(["sweep", str(config), "--db", str(db)]) == 0
    capsys.readouterr()
    with Store(db, readonly=True) as store:
        rejected = store.rejections()
    assert sum(rejected.values()) == 2 and all("legalize needs nr to be a multiple of" in r for r in rejected)
    assert main(["report", "--db", str(db), "--json"]) == 0
    summary = parse(capsys.readouterr().out)[2][-1]
    assert summary["rejections"] == rejected and "2 points rejected before compiling" in summary["summary"]


def test_the_fraction_chart_puts_llvm_mcas_prediction_beside_the_measurement(tmp_path, capsys):
    from runner.report.report import build_report, measured_and_predicted
    from runner.store.results import Store
    db = _store(tmp_path, capsys)
    assert main(["mca", str(write(tmp_path, GOOD)), "--strategy", "6x16-u2", "--db", str(db), "--json"]) == 0
    prediction = one(capsys.readouterr().out, "prediction")
    ok = [r for r in build_report(db, 5).results if r["status"] == "ok"]
    with Store(db, readonly=True) as store:
        rows = measured_and_predicted(ok, store.predictions())
    # The store holds 6x16-u2 at kc 64 (predicted) and kc 32 (not), and 4x8 at both (not).
    assert [(n, p) for n, _, p in rows if p is not None] == [("6x16-u2", prediction["predicted_fraction_of_model_peak"])]
    assert len(rows) == 4 and all(0 < measured <= 1 for _, measured, _ in rows)


def test_route_studies_are_reported_with_their_rule_and_damaged_rows_left_out(tmp_path, capsys):
    """Layer studies of two networks on one host: the route table, the rule and its regret, in text,
    JSON and HTML; rows another tool wrote (not JSON, a NaN figure, a shape that is no convolution,
    a terminal escape in a name) neither crash the report nor reach the rule."""
    import sqlite3

    from pipelines.targets import host_target
    from runner.store.results import Store

    from .test_routes import _layers

    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        run = store.start_run("routes", host_target())
        for layer in _layers():
            routes = {name: {"gflops": g, "fraction": g / 100, "extra_bytes": 1 << 20, "vs_best": [1.0, 0.9, 1.1],
                             "vs_ort": [1.2, 1.1, 1.3]} for name, g in layer.gflops.items()}
            store.add_route_study(run, "synthetic", host_target(), {
                "layer": layer.name, "network": layer.network, "shape": layer.shape, "routes": routes,
                "ort": {"ORT": {"gflops": 10.0, "configuration": "ONNX Runtime"}}, "winner": layer.best,
                "margin": [1.5, 1.4, 1.6], "clear": True})
        store.add_route_study(run, "synthetic-t2", host_target(), {
            "layer": "dw1", "network": "a", "shape": _layers()[0].shape, "threads": 2, "winner": "depthwise",
            "routes": {"depthwise": {"gflops": 35.0}, "im2col": {"gflops": 3.5}}})
        store.add_route_study(run, "synthetic", host_target(), {"layer": "nan\x1b[2J", "network": "a",
                                                                "routes": {"im2col": {"gflops": float("nan")}}})
        store.add_route_study(run, "synthetic", host_target(), {"layer": "nogroups", "network": "a", "routes": {
            "im2col": {"gflops": 1.0}}, "shape": {**_layers()[0].shape, "groups": 3}})
    con = sqlite3.connect(db)
    con.execute("UPDATE route_studies SET study_json = 'not json' WHERE layer = 'small2'")
    con.commit()
    assert main(["report", "--db", str(db), "--html", str(tmp_path / "r.html")]) == 0
    out = capsys.readouterr().out
    assert "regret, geometric mean (leave one network out): derived" in out
    assert ", 1 thread:" in out and ", 2 threads:" in out  # a rule is a core's at a thread count
    assert "dw1" in out and "small2" not in out and "nogroups" not in out and "\x1b" not in out
    html = (tmp_path / "r.html").read_text()
    assert "Route rule fitted on these layers" in html and "big1" in html
    assert main(["report", "--db", str(db), "--json"]) == 0
    one_thread, two = of_type(capsys.readouterr().out, "route_study")
    assert (one_thread["threads"], one_thread["layers"], two["threads"], two["layers"]) == (1, 5, 2, 1)
    assert set(one_thread["regret"]) == {"derived", "XNNPACK", "ACL", "MLAS"}
