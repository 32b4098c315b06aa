"""`ukl run` on a gemm config and `ukl crossover` end to end (small shapes, fast timing)."""
import textwrap

from runner.cli.main import main

from .test_cli import write
from .jsonl import of_type, one, results
from .test_baselines import LIBRARIES

KERNEL = textwrap.dedent("""
    [[strategy]]
    name = "6x16"
    mr = 6
    nr = 16
    kc = 64
    steps = ["tile_k", "vectorize", "hoist_accumulators", "lower_contraction", "lower_transfers", "scalar_loads",
             "c_after_loop", { step = "unroll_k", factor = 4 }]
""")

GEMM = textwrap.dedent("""
    [experiment]
    name = "gemm"
    kind = "gemm"
    [timing]
    min_sample_seconds = 0.002
    samples = 10
    [gemm]
    shapes = [[97, 131, 77], [64, 64, 64]]
    mc = 24
    nc = 64
""") + KERNEL


def test_gemm_run_records_ours_and_openblas(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, GEMM)), "--db", str(tmp_path / "r.sqlite"), "--json"]) == 0
    records = results(capsys.readouterr().out)
    assert [r["shape"] for r in records] == [[97, 131, 77], [64, 64, 64]]
    for r in records:
        assert r["status"] == "ok" and r["correct"] is True
        assert r["gflops"] > 0 and r["baseline_gflops"] > 0
        assert [b["name"] for b in r["baselines"]] == LIBRARIES
        for b in r["baselines"]:  # every baseline: its figures, ours over it with an interval, what ran
            assert b["gflops_min"] <= b["gflops"] <= b["gflops_max"] and b["ratio_ci"][0] <= b["ratio"] <= b["ratio_ci"][1]
        assert r["baselines"][0]["configuration"].startswith("numpy.matmul, OpenBLAS 0.")
        assert r["baselines"][1]["configuration"].startswith("BLIS ")
        assert all(b["configuration"].startswith("MKL 20") for b in r["baselines"][2:])
        # Ours over theirs, not the inverse: the median of paired ratios agrees with the ratio of medians
        # within a factor that a loaded machine stays inside (a busy neighbour moved them 1.7x apart once).
        assert 0.25 < r["ratio_to_baseline"] / (r["gflops"] / r["baseline_gflops"]) < 4
        assert r["ratio_ci"][0] <= r["ratio_to_baseline"] <= r["ratio_ci"][1]
    assert records[0]["gemm_hash"] != records[1]["gemm_hash"]  # the shape is part of the GEMM's identity
    assert records[0]["strategy_hash"] == records[1]["strategy_hash"]  # the micro-kernel's is its own


def test_gemm_table(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, GEMM.replace("[64, 64, 64]", "[1, 1, 1]"))),
                 "--db", str(tmp_path / "r.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "ours/OpenBLAS [95% CI]" in out and "ours/BLIS [95% CI]" in out and "6x16@1x1x1" in out


def test_impossible_blocking_is_bad_input(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, GEMM.replace("mc = 24", "mc = 25")))]) == 2
    assert "gemm (6x16, shape [97, 131, 77]).mc and nc: must be multiples of mr=6" in capsys.readouterr().err


def test_unknown_loop_order_is_bad_input_before_anything_runs(tmp_path, capsys):
    """Word-valued [gemm] settings are checked even when no strategy is listed (a sweep's config)."""
    sweep = GEMM.replace("nc = 64", "nc = 64\ninner = \"kr\"").replace(KERNEL, "\n[space]\nmr = [6]\nnr = [16]\n")
    assert main(["sweep", str(write(tmp_path, sweep)), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gemm.inner: 'kr' is not one of its values ('ir', 'jr')" in err
    assert not (tmp_path / "r.sqlite").exists()


CROSSOVER = textwrap.dedent("""
    [experiment]
    name = "cross"
    kind = "crossover"
    [timing]
    min_sample_seconds = 0.002
    samples = 10
    [crossover]
    m = [1, 64]
    n = [256]
    k = [64]
    routes = [{ name = "packed", strategy = "6x16" }, { name = "direct", strategy = "6x16", traversal = "direct" },
              { name = "openblas", numpy = true }]
""") + KERNEL


def test_crossover_json_plot_and_store(tmp_path, capsys):
    """Printed, drawn, and stored: `ukl report` redraws the crossover from the store without measuring."""
    plot, db = tmp_path / "x.png", tmp_path / "r.sqlite"
    assert main(["crossover", str(write(tmp_path, CROSSOVER)), "--json", "--plot", str(plot), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    points, boundary = of_type(out, "crossover_point"), one(out, "boundary")
    assert [p["shape"] for p in points] == [[1, 256, 64], [64, 256, 64]]
    assert all(set(p["gflops"]) == {"packed", "direct", "openblas"} for p in points)
    assert points[0]["winner"] == "B"  # one row: packing B costs more than the whole product
    assert boundary["boundary"] and plot.read_bytes()[:4] == b"\x89PNG"
    from runner.store.results import Store
    with Store(db, readonly=True) as store:
        (stored,) = store.crossovers()
    assert stored["routes"] == ["packed", "direct", "openblas"] and stored["points"] == [
        {k: v for k, v in p.items() if k not in ("type", "schema")} for p in points]
    for point in stored["points"]:  # every route's figure at every shape, none lost under another's name
        assert sorted(point["gflops"]) == sorted(stored["routes"]) and all(g > 0 for g in point["gflops"].values())
    assert stored["boundary"]["boundary"] == boundary["boundary"]
    assert main(["report", "--db", str(db), "--plots", str(tmp_path / "plots"), "--json"]) == 0
    summary = of_type(capsys.readouterr().out, "summary")[0]
    assert "Crossover cross: packed vs direct" in summary["plots"]
    assert (tmp_path / "plots" / "crossover-1.png").read_bytes()[:4] == b"\x89PNG"


def test_crossover_route_must_name_a_strategy(tmp_path, capsys):
    assert main(["crossover", str(write(tmp_path, CROSSOVER.replace('strategy = "6x16" }', 'strategy = "7x7" }')))]) == 2
    assert "crossover.routes[0].strategy: '7x7' is not a [[strategy]] of this config" in capsys.readouterr().err


def test_each_command_takes_its_kind_only(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, CROSSOVER))]) == 2
    assert "experiment.kind 'crossover' is not for ukl run (use ukl crossover)" in capsys.readouterr().err
    assert main(["sweep", str(write(tmp_path, CROSSOVER, "c.toml"))]) == 2
    assert "experiment.kind 'crossover' is not for ukl sweep" in capsys.readouterr().err


def test_threads_beyond_this_machine_are_one_line_and_exit_2(tmp_path, capsys):
    import os
    cpus = len(os.sched_getaffinity(0))
    path = write(tmp_path, GEMM.replace("nc = 64", f"nc = 64\nthreads = {cpus + 1}"))
    assert main(["run", str(path), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"gemm.threads: must be from 1 to {cpus} (the CPUs this process may use), " \
                                   f"got {cpus + 1}" in err


def test_a_two_thread_gemm_run_names_its_threads_and_baselines(tmp_path, capsys):
    path = write(tmp_path, GEMM.replace("nc = 64", "nc = 64\nthreads = 2\nsplit = \"ic\""))
    # Two threads on a 2-CPU machine running the suite can be disturbed (recorded as such, exit 1).
    assert main(["run", str(path), "--db", str(tmp_path / "r.sqlite"), "--json"]) in (0, 1)
    records = results(capsys.readouterr().out)
    for r in records:
        assert r["status"] in ("ok", "disturbed") and r["correct"] is True
        assert r["gemm"]["threads"] == 2 and r["name"].endswith("-t2ic")
        configurations = [b["configuration"] for b in r["baselines"]]
        assert "2 threads" in configurations[0] and "pthread, 2 threads" in configurations[1]


def test_a_packing_bound_smaller_than_one_panel_is_one_line_and_exit_2(tmp_path, capsys):
    path = write(tmp_path, GEMM.replace("nc = 64", "nc = 64\npack_bytes = 1000"))
    assert main(["run", str(path), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pack_bytes: 1000 bytes hold less than one packed B panel " \
                                   "(kc x nr = 64 x 16 f32 = 4096 bytes)" in err
    assert not (tmp_path / "r.sqlite").exists()


def test_a_packing_bound_caps_nc_in_whole_panels():
    from kernels_mlir.gemm import GemmSpec
    from kernels_mlir.spec import KernelSpec
    bounded = GemmSpec(512, 512, 512, KernelSpec(6, 16, 256), nc=1024, pack_bytes=2 << 20)  # the seed's 2 MiB
    assert bounded.blocks[1] == 512  # 2 MiB / (256 x 16 x 4 B) = 128 panels -> nc 2048, capped by N = 512
    assert GemmSpec(4096, 4096, 512, KernelSpec(6, 16, 256), nc=4096, pack_bytes=2 << 20).blocks[1] == 2048
