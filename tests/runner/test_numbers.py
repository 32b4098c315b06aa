"""Every number on the command line and in a config is checked with its unit and range: finite,
positive where it must be, bounded where a huge value would hang or exhaust the machine."""
import pytest

from runner.cli.main import main

CLI = [
    (["peak", "--samples", "0"], "argument --samples: must be an integer from 10 to 1000, got 0"),
    (["peak", "--min-sample-seconds", "-1"], "must be a number of seconds in [0.001, 10], got -1.0"),
    (["peak", "--min-sample-seconds", "nan"], "got nan"),
    (["compare", "a", "b", "--rounds", "1"], "argument --rounds: must be an integer from 10 to 10000, got 1"),
    (["compare", "a", "b", "--min-sample-seconds", "0"], "must be a number of seconds in [0.001, 10], got 0.0"),
    (["sweep", "x.toml", "--time", "nan"], "argument --time: must be a number of seconds in (0, "),
    (["sweep", "x.toml", "--time", "inf"], "argument --time"),
    (["sweep", "x.toml", "--jobs", "100000"], "argument --jobs: must be an integer from 1 to "),
    (["sweep", "x.toml", "--top", "-1"], "argument --top: must be an integer from 1 to 1000000, got -1"),
    (["report", "--top", "-1"], "argument --top: must be an integer from 1 to 1000000, got -1"),
    (["sweep", "x.toml", "--budget", "1e3"], "argument --budget: not a whole number: '1e3'"),
]


@pytest.mark.parametrize("args,message", CLI, ids=[" ".join(a) for a, _ in CLI])
def test_a_command_line_number_out_of_range_is_one_line(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


CONFIG = [
    ("[sweep]\nscreen_min_sample_seconds = -1", "sweep.screen_min_sample_seconds: must be a number of seconds in"),
    ("[sweep]\nscreen_samples = 1000000000", "sweep.screen_samples: must be an integer from 5 to 1000"),
    ("[sweep]\ntimeout_seconds = nan", "sweep.timeout_seconds: must be a number of seconds in (0, 3600], got nan"),
    ("[sweep]\ntime_seconds = inf", "sweep.time_seconds: must be a number of seconds in"),
    ("[sweep]\njobs = 100000", "sweep.jobs: must be an integer from 1 to"),
    ("[sweep]\nbudget = 0", "sweep.budget: must be an integer from 1 to 1000000, got 0"),
    ("[timing]\nmin_sample_seconds = nan", "timing.min_sample_seconds: must be a number of seconds in"),
    ("[timing]\nsamples = 100000000", "timing.samples: must be an integer from 10 to 1000"),
    ('[space]\nopt = ["O9"]', "space.opt: 'O9' is not one of its values"),
]


@pytest.mark.parametrize("section,message", CONFIG, ids=[c.split("\n")[1] for c, _ in CONFIG])
def test_a_config_number_out_of_range_is_one_line_and_nothing_is_written(tmp_path, capsys, section, message):
    config = tmp_path / "c.toml"
    space = "" if section.startswith("[space]") else "[space]\nmr = [4]\n"
    config.write_text(f'[experiment]\nname = "c"\n{section}\n{space}')
    db = tmp_path / "r.sqlite"
    assert main(["sweep", str(config), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not db.exists()


@pytest.mark.parametrize("content,message", [
    ("[experiment]\nname = \"x\"\n[[strategy]]\nname = \"a\"\nmr = " + "9" * 5000 + "\nnr = 8\nkc = 16\n",
     "malformed TOML: Exceeds the limit"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "malformed TOML: nested too deeply"),
])
def test_hostile_config_contents_are_one_line(tmp_path, capsys, content, message):
    config = tmp_path / "c.toml"
    config.write_text(content)
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("kind", ["bytes", "fifo", "device", "huge"])
def test_a_config_that_is_not_a_small_utf8_file_is_refused_without_reading_forever(tmp_path, capsys, kind):
    import os
    config = tmp_path / "c.toml"
    if kind == "bytes":
        config.write_bytes(b'[experiment]\nname = "\xff\xfe"\n')
    elif kind == "fifo":
        os.mkfifo(config)
    elif kind == "huge":
        config.write_text("# " + "x" * (2 << 20) + "\n")
    else:
        config = "/dev/zero"
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    expected = {"bytes": "not UTF-8 text (byte 0xff", "fifo": "not a regular file", "device": "not a regular file",
                "huge": "a config is at most 1048576 bytes"}[kind]
    assert err.count("\n") == 1 and expected in err, err


@pytest.mark.parametrize("llvm,message", [
    ('{ cpu = "not-a-cpu" }', "llvm.cpu: 'not-a-cpu' is not a CPU LLVM knows for x86_64"),
    ('{ cpu = "znver44" }', "(did you mean 'znver4'?)"),
    ('{ features = "+notafeature" }', "llvm.features: '+notafeature' is not '+name' or '-name' with a feature"),
    ('{ features = "avx2" }', "llvm.features: 'avx2' is not '+name' or '-name'"),
])
def test_llvm_names_must_be_ones_llvm_knows_for_the_target(tmp_path, capsys, llvm, message):
    config = tmp_path / "c.toml"
    config.write_text(f'[experiment]\nname = "c"\n[[strategy]]\nname = "a"\nmr = 4\nnr = 8\nkc = 16\nllvm = {llvm}\n')
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_features_the_host_lacks_make_a_strategy_non_native_instead_of_crashing(tmp_path):
    """With the host capped to AVX2, a strategy asking for AVX-512 is skipped in one line, not run (SIGILL)."""
    import os
    import subprocess
    import sys
    config = tmp_path / "c.toml"
    config.write_text('[experiment]\nname = "c"\n[timing]\nmin_sample_seconds = 0.002\n[[strategy]]\nname = "plain"\n'
                      'mr = 4\nnr = 8\nkc = 16\n[[strategy]]\nname = "wide"\nmr = 4\nnr = 8\nkc = 16\n'
                      'llvm = { features = "+avx512f" }\n')
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(config), "--db", str(tmp_path / "r.sqlite")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd(),
                                                               "UKL_HOST_ISA": "avx2"})
    assert proc.returncode == 0, proc.stderr
    assert __import__("re").search(r"^skipped\s+wide: its llvm.features enable avx512f, which host \(", proc.stdout,
                                   __import__("re").M), proc.stdout
    asm = subprocess.run([sys.executable, "-m", "runner.cli", "asm", str(config), "--strategy", "wide", "--json"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd(),
                                                              "UKL_HOST_ISA": "avx2"})
    assert asm.returncode == 0 and '"status": "ok"' in asm.stdout  # still compiled and inspected


@pytest.mark.parametrize("section,message", [
    ("[gemm]\nshapes = [[32768, 32768, 32768]]", "GiB for its operands and buffers; this machine"),
    # Small operands, a huge C: the float64 check of C is what would not fit (and is counted).
    ("[gemm]\nshapes = [[32768, 32768, 1]]", "gemm.shapes [32768, 32768, 1]: needs 72.0 GiB"),
    ("[gemm]\nshapes = [[0, 8, 8]]", "gemm.shapes [0, 8, 8]: m: must be an integer between 1 and 32768"),
    ("[gemm]\nshapes = [" + ", ".join(["[8, 8, 8]"] * 10_001) + "]", "gemm.shapes: 10001 shapes; at most 10000"),
])
def test_gemm_configs_are_bounded_by_memory_and_size(tmp_path, capsys, section, message):
    from runner.measure.environment import available_memory
    if "GiB" in message:
        assert available_memory() < 40 * 2 ** 30, "a machine of our kind (24 GiB) cannot hold it"
    config = tmp_path / "g.toml"
    config.write_text(f'[experiment]\nname = "g"\nkind = "gemm"\n{section}\n'
                      '[[strategy]]\nname = "k"\nmr = 6\nnr = 16\nkc = 256\n')
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_crossover_grid_is_bounded(tmp_path, capsys):
    config = tmp_path / "x.toml"
    grid = "[" + ", ".join(str(i) for i in range(1, 1001)) + "]"
    config.write_text(f'[experiment]\nname = "x"\nkind = "crossover"\n[crossover]\nm = {grid}\nn = {grid}\nk = {grid}\n'
                      'routes = [{ name = "a", numpy = true }, { name = "b", numpy = true }]\n'
                      '[[strategy]]\nname = "k"\nmr = 6\nnr = 16\nkc = 64\n')
    assert main(["crossover", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a grid of 1000000000 shapes; at most 10000" in err, err


@pytest.mark.parametrize("section,message", [
    ("[gemm]\nshapes = [[32768, 32768, 1]]", "gemm.shapes [32768, 32768, 1]: needs 72.0 GiB"),
    ("[gemm]\nshapes = [[0, 8, 8]]", "gemm.shapes [0, 8, 8]: m: must be an integer between 1 and 32768"),
])
def test_a_space_only_gemm_sweep_validates_its_shapes_as_a_run_does(tmp_path, capsys, section, message):
    config = tmp_path / "s.toml"
    config.write_text(f'[experiment]\nname = "s"\nkind = "gemm"\n{section}\n[space]\nmr = [6]\n')
    assert main(["sweep", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("routes,shape,message", [
    ('[{ name = "a", numpy = true }, { name = "a", strategy = "k" }]', "m = [8]\nn = [8]\nk = [8]",
     "crossover.routes[1].name: duplicate route name 'a'"),
    ('[{ name = "a", numpy = true }, { name = "b", numpy = true }]', "m = [8]\nn = [8]\nk = [40000]",
     "crossover.m, n, k: shape [8, 8, 40000]: k: must be an integer between 1 and 32768"),
    ('[{ name = "a", numpy = true }, { name = "b", numpy = true }]', "m = [32768]\nn = [32768]\nk = [1]",
     "crossover.m, n, k: shape [32768, 32768, 1]: needs 72.0 GiB"),
])
def test_crossover_routes_are_unique_and_every_route_is_bounded(tmp_path, capsys, routes, shape, message):
    config = tmp_path / "x.toml"
    config.write_text(f'[experiment]\nname = "x"\nkind = "crossover"\n[crossover]\n{shape}\nroutes = {routes}\n'
                      '[[strategy]]\nname = "k"\nmr = 6\nnr = 16\nkc = 64\n')
    assert main(["crossover", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_gemm_space_asks_its_kind_for_thread_counts_this_machine_has(tmp_path, capsys):
    config = tmp_path / "t.toml"
    config.write_text('[experiment]\nname = "t"\nkind = "gemm"\n[gemm]\nshapes = [[8, 8, 8]]\n[space]\nthreads = [1, 64]\n')
    assert main(["sweep", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "space.threads: must be from 1 to" in err and "got 64" in err, err
