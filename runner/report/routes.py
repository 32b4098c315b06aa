"""Route studies as tables, a rule and a plot: what `ukl routes` prints and `ukl report` shows again
from the store (nothing is measured again). A rule is a core's: studies are grouped by target and
host CPU before one is fitted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tabulate import tabulate

from kernels_mlir.conv import ConvShape
from kernels_mlir.spec import SpecError

from runner.report.display import terminal
from runner.studies.route_rule import Layer, RuleReport, derive


def _measured(study: dict[str, Any]) -> bool:
    """A study row as `ukl routes` writes it: a convolution's shape and finite positive figures."""
    shape, routes = study.get("shape"), study.get("routes")
    if not isinstance(shape, dict) or not isinstance(routes, dict) or not routes:
        return False
    try:
        ConvShape(**shape)
    except (SpecError, TypeError):
        return False
    figures = [r.get("gflops") if isinstance(r, dict) else None for r in routes.values()]
    return all(isinstance(g, (int, float)) and not isinstance(g, bool) and 0 < g < float("inf") for g in figures) \
        and isinstance(study.get("layer"), str) and isinstance(study.get("network"), str)


def usable(studies: list[dict[str, Any]], host_cpu: str | None = None, threads: int | None = None
           ) -> list[dict[str, Any]]:
    """Stored layer studies a rule can be fitted on (measured, whole), of one host CPU and thread count
    if given; a row the store holds but `ukl routes` did not write is left out, never a crash."""
    return [s for s in studies if not s.get("damaged") and _measured(s) and
            (host_cpu is None or s.get("host_cpu") == host_cpu) and (threads is None or _threads(s) == threads)]


def _threads(study: dict[str, Any]) -> int:
    """The thread count a study ran at (1 when a row does not say)."""
    threads = study.get("threads", 1)
    return threads if isinstance(threads, int) and not isinstance(threads, bool) else 1


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _ratio(cell: Any) -> str:
    """[ratio, low, high] as text; '?' for what is missing or not numbers (a row another tool wrote)."""
    if isinstance(cell, list) and len(cell) == 3 and all(_finite(v) for v in cell):
        return f"{cell[0]:.2f} [{cell[1]:.2f}, {cell[2]:.2f}]"
    return "-" if cell is None else "?"


def _figure(value: Any, scale: float, form: str) -> str:
    return form.format(value * scale) if _finite(value) else "?"


HEADERS = ["network", "layer", "winner", "over runner-up [95% CI]", "GFLOP/s", "vs ORT best [95% CI]", "of peak",
           "extra MiB", "verdict"]


def route_rows(studies: list[dict[str, Any]]) -> list[list[str]]:
    """Per layer: the winner, its margin over the runner-up, its ratio to ONNX Runtime's better
    configuration, its fraction of peak and extra memory (stored text escaped for a terminal)."""
    rows = []
    for s in studies:
        win = s.get("winner")
        r = s["routes"].get(win) if isinstance(win, str) else None
        r = r if isinstance(r, dict) else {}
        rows.append([terminal(str(s.get("network", ""))), terminal(str(s.get("layer", ""))),
                     terminal(str(win)) if win else "-", _ratio(s.get("margin")), _figure(r.get("gflops"), 1, "{:.1f}"),
                     _ratio(r.get("vs_ort")), _figure(r.get("fraction"), 100, "{:.1f}%"),
                     _figure(r.get("extra_bytes"), 2**-20, "{:.2f}"),
                     "disturbed (above the peak)" if s.get("disturbed") is True else
                     "clear" if s.get("clear") is True else "within the noise"])
    return rows


def route_table(studies: list[dict[str, Any]]) -> str:
    return tabulate(route_rows(studies), headers=HEADERS, disable_numparse=True)


def rule_text(report: RuleReport) -> str:
    regrets = ", ".join(f"{name} {100 * value:.1f}%" for name, value in report.regret.items())
    return "\n".join(["route rule (decision tree on every stored layer of this target, host and thread count):",
                      report.rule.text(),
                      f"regret, geometric mean ({report.scoring}): {regrets}"])


@dataclass
class RouteGroup:
    """The route studies of one target on one host CPU: their table, the rule fitted on them, a plot."""

    target: str
    host_cpu: str
    threads: int
    studies: list[dict[str, Any]]
    report: RuleReport

    @property
    def title(self) -> str:
        return f"conv2d routes on {self.target} ({self.host_cpu}), {self.threads} thread{'s' * (self.threads > 1)}"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "host_cpu": self.host_cpu, "threads": self.threads, "layers": len(self.studies),
                "rule": self.report.rule.text(), "scoring": self.report.scoring, "regret": self.report.regret}

    def plot(self) -> Figure:
        """Each route's GFLOP/s across the layers, with ONNX Runtime's better configuration."""
        names = list(dict.fromkeys(n for s in self.studies for n in s["routes"]))
        fig = Figure(figsize=(max(6.0, 2 + 0.45 * len(self.studies)), 4.2))
        ax = fig.subplots()
        x = np.arange(len(self.studies))
        for name in names:
            ax.plot(x, [s["routes"].get(name, {}).get("gflops", np.nan) for s in self.studies], "o-", ms=4,
                    label=terminal(name))
        ort = [max((o.get("gflops") or 0.0 for o in s.get("ort", {}).values()), default=np.nan) for s in self.studies]
        ax.plot(x, ort, "k--", lw=1, label="ONNX Runtime (better configuration)")
        ax.set_xticks(x, [terminal(str(s.get("layer"))) for s in self.studies], rotation=60, ha="right",
                      fontsize="x-small")
        ax.set_ylabel("GFLOP/s (median)")
        ax.set_yscale("log")
        ax.legend(fontsize="x-small")
        ax.set_title(terminal(self.title), fontsize="medium")
        fig.tight_layout()
        return fig


def route_groups(studies: list[dict[str, Any]]) -> list[RouteGroup]:
    """One group per (target, host CPU, thread count) holding measured studies, each with its fitted
    rule: a route rule is a core's at a thread count."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for s in usable(studies):
        groups.setdefault((s["target"], s["host_cpu"], _threads(s)), []).append(s)
    return [RouteGroup(target, host, threads, found, derive([Layer.from_study(s) for s in found]))
            for (target, host, threads), found in groups.items()]
