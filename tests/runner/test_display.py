"""What comes from configs and databases is shown escaped: terminal tables, Markdown and HTML."""
import sqlite3

from runner.cli.main import main
from runner.report.display import markdown_cell, terminal

HOSTILE = "evil\x1b[31mred\nnext|cell`tick"


def test_terminal_text_shows_control_characters_as_escapes():
    assert terminal(HOSTILE) == "evil\\x1b[31mred\\nnext|cell`tick"
    assert "\x1b" not in terminal(HOSTILE) and "\n" not in terminal(HOSTILE)


def test_markdown_cells_cannot_break_the_table():
    cell = markdown_cell(HOSTILE)
    assert "\n" not in cell and "\\|" in cell and "|" not in cell.replace("\\|", "")


def test_report_escapes_names_read_from_a_database(tmp_path, capsys):
    """A name written by some other writer (or an older version) reaches the terminal and HTML escaped."""
    from .test_cli import GOOD, write
    db = tmp_path / "r.sqlite"
    assert main(["run", str(write(tmp_path, GOOD)), "--db", str(db)]) == 0
    sqlite3.connect(db).execute("UPDATE results SET name = ?", ("<b>" + HOSTILE,)).connection.commit()
    capsys.readouterr()
    html = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[31mred\\nnext" in out
    assert "<b>evil" not in html.read_text() and "&lt;b&gt;evil" in html.read_text()
