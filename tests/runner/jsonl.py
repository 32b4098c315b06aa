"""Reading the JSON lines of `ukl run/sweep/report --json`: a context header, results, then others."""
import json

from runner.cli.json_lines import SCHEMA


def parse(text: str) -> tuple[dict, list[dict], list[dict]]:
    """(context, results, other lines); the first line must be the context and every line versioned."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and lines[0]["type"] == "context", lines[:1]
    assert all(line["schema"] == SCHEMA for line in lines)
    return lines[0], [x for x in lines if x["type"] == "result"], [x for x in lines[1:] if x["type"] != "result"]


def results(text: str) -> list[dict]:
    return parse(text)[1]


def of_type(text: str, kind: str) -> list[dict]:
    """The lines of one type (after the context header every command prints first)."""
    return [x for x in parse(text)[2] if x["type"] == kind]


def one(text: str, kind: str) -> dict:
    (only,) = of_type(text, kind)
    return only
