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
