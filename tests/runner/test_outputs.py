"""Nothing is written outside the place named: output options are checked before any work, names
never become paths, and links planted in an output folder are refused rather than followed."""
import pytest

from runner.cli.main import main

CONFIG = "experiments/default.toml"


def one_line(capsys, fragment):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err


@pytest.mark.parametrize("args,fragment", [
    (["report", "--html", "{dir}"], "is a directory: name a file to write"),
    (["report", "--plots", "{file}"], "is a file: name a folder to write into"),
    (["asm", CONFIG, "--out", "{file}"], "is a file: name a folder to write into"),
    (["sweep", "experiments/ci_smoke.toml", "--markdown", "{dir}"], "is a directory: name a file to write"),
    (["crossover", "experiments/crossover_small_m.toml", "--plot", "{dir}"], "is a directory: name a file to write"),
    (["report", "--html", "{link}"], "is a symbolic link (not followed)"),
])
def test_an_output_path_of_the_wrong_kind_is_one_line_before_any_work(tmp_path, capsys, args, fragment):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "target")
    where = {"dir": tmp_path / "d", "file": tmp_path / "f", "link": tmp_path / "l"}
    assert main([a.format(**where) for a in args] + ["--db", str(tmp_path / "r.sqlite")]
                if args[0] in ("report", "sweep") else [a.format(**where) for a in args]) == 2
    one_line(capsys, fragment)
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "target").exists()


def test_a_link_planted_inside_an_output_folder_is_not_followed(tmp_path, capsys):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "8x8-u4").symlink_to(outside)
    assert main(["asm", CONFIG, "--strategy", "8x8-u4", "--out", str(out)]) == 2
    one_line(capsys, "is a symbolic link inside the output folder (not followed)")
    assert not any(outside.iterdir())
