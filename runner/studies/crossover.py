"""`ukl crossover`: where does one route start beating another, as the problem grows?

Every route runs on every shape of a grid, in alternation within one process; per shape the speed
ratio of route A to route B gets a 95% bootstrap interval. A shape counts for A (or B) only
when the whole interval lies beyond the noise floor; the boundary is bracketed by the last shape
B wins and the first shape from which A always wins, and placed by interpolating log(ratio)
across 1 in log(work). This replaces a magic threshold ("use a plain loop when M < 16") by
a measured one, with its uncertainty.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

from matplotlib.figure import Figure

from runner.measure.stats import MIN_EFFECT


@dataclass(frozen=True)
class ShapePoint:
    shape: tuple[int, int, int]
    #: Median GFLOP/s of each route, in route order.
    gflops: tuple[float, ...]
    ratio: float  # speed of route A / speed of route B (median over alternated pairs)
    ci_low: float
    ci_high: float

    @property
    def work(self) -> int:
        m, n, k = self.shape
        return m * n * k

    @property
    def winner(self) -> str:
        """"A", "B" or "tie" (the interval overlaps the noise floor)."""
        if self.ci_low > 1 + MIN_EFFECT:
            return "A"
        if self.ci_high < 1 - MIN_EFFECT:
            return "B"
        return "tie"


@dataclass(frozen=True)
class Boundary:
    """Where A takes over from B (or B from A), in units of M*N*K, or why there is none."""

    verdict: str
    #: The last work at which the earlier winner still won, the first from which the later one always wins.
    low: int | None = None
    high: int | None = None
    #: log-interpolated work where the ratio crosses 1.
    estimate: float | None = None


def point_json(point: ShapePoint, names: Sequence[str]) -> dict:
    """A measured shape as JSON (what `--json` prints and the store keeps)."""
    return {"shape": list(point.shape), "work": point.work, "gflops": dict(zip(names, point.gflops)),
            "ratio": point.ratio, "ratio_ci": [point.ci_low, point.ci_high], "winner": point.winner}


def point_from_json(data: dict, names: Sequence[str]) -> ShapePoint:
    return ShapePoint(tuple(data["shape"]), tuple(data["gflops"][n] for n in names), data["ratio"],
                      *data["ratio_ci"])


def boundary_json(boundary: Boundary) -> dict:
    return {"boundary": boundary.verdict, "low": boundary.low, "high": boundary.high, "estimate": boundary.estimate}


def boundary_from_json(data: dict) -> Boundary:
    return Boundary(data["boundary"], data["low"], data["high"], data["estimate"])


def find_boundary(points: Sequence[ShapePoint], names: tuple[str, str] = ("A", "B")) -> Boundary:
    ordered = sorted(points, key=lambda p: p.work)
    decided = [p for p in ordered if p.winner != "tie"]
    if not decided:
        return Boundary(f"no difference beyond the noise floor at any of the {len(ordered)} shapes")
    late = decided[-1].winner
    late_name, early_name = (names[0], names[1]) if late == "A" else (names[1], names[0])
    early = [p for p in decided if p.winner != late]
    if not early:
        return Boundary(f"{late_name} is faster or even at every shape: no crossover in this grid")
    last_early = early[-1]
    first_late = next(p for p in decided if p.work > last_early.work)
    estimate = _interpolate(ordered, last_early.work, first_late.work)
    return Boundary(f"{late_name} is faster from M*N*K = {first_late.work} ({_shape(first_late)}) on; "
                    f"{early_name} wins up to {last_early.work} ({_shape(last_early)}); "
                    f"the ratio crosses 1 near M*N*K = {estimate:.3g}", last_early.work, first_late.work, estimate)


def _shape(p: ShapePoint) -> str:
    return "x".join(map(str, p.shape))


def _interpolate(points: Sequence[ShapePoint], low: int, high: int) -> float:
    """Work where log(ratio) crosses 0, linearly in log(work), between the bracketing shapes."""
    window = [p for p in points if low <= p.work <= high]
    for a, b in zip(window, window[1:]):
        la, lb = math.log(a.ratio), math.log(b.ratio)
        if la == 0:
            return float(a.work)
        if la * lb <= 0 and la != lb:
            t = la / (la - lb)
            return math.exp(math.log(a.work) + t * (math.log(b.work) - math.log(a.work)))
    return math.sqrt(low * high)


def varied_dimension(points: Sequence[ShapePoint]) -> tuple[str, list[int]]:
    """The axis a crossover plot uses: the one dimension that varies ("M", "N" or "K"), else M*N*K."""
    varying = [d for d in range(3) if len({p.shape[d] for p in points}) > 1]
    if len(varying) == 1:
        return "MNK"[varying[0]], [p.shape[varying[0]] for p in points]
    return "M x N x K", [p.work for p in points]


def plot(points: Sequence[ShapePoint], boundary: Boundary, names: Sequence[str], title: str,
         unit: str = "GFLOP/s") -> bytes:
    """Two panels over the varied dimension: every route's GFLOP/s (legend), and the speed ratio of the
    first two routes with its 95% interval, the noise band and the boundary."""
    ordered = sorted(points, key=lambda p: p.work)
    label, x = varied_dimension(ordered)
    fig = Figure(figsize=(7.5, 6.4))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for i, name in enumerate(names):
        top.plot(x, [p.gflops[i] for p in ordered], marker="o", label=name)
    top.set_ylabel(f"{unit} (median)")
    top.legend(fontsize="small")
    top.grid(alpha=0.3, which="both")
    top.set_title(title, fontsize="medium")
    y = [p.ratio for p in ordered]
    err = [[p.ratio - p.ci_low for p in ordered], [p.ci_high - p.ratio for p in ordered]]
    colors = {"A": "tab:green", "B": "tab:red", "tie": "tab:gray"}
    bottom.errorbar(x, y, yerr=err, fmt="none", ecolor="0.6", capsize=3, label="95% interval")
    for winner, text in (("A", f"{names[0]} faster"), ("B", f"{names[1]} faster"), ("tie", "within the noise")):
        chosen = [(xi, yi) for xi, yi, p in zip(x, y, ordered) if p.winner == winner]
        if chosen:
            bottom.scatter(*zip(*chosen), c=colors[winner], zorder=3, label=text)
    bottom.axhline(1.0, color="k", lw=0.8)
    bottom.axhspan(1 - MIN_EFFECT, 1 + MIN_EFFECT, color="0.9", zorder=0)
    if boundary.low is not None and label == "M x N x K":
        bottom.axvspan(boundary.low, boundary.high, color="tab:blue", alpha=0.12)
        bottom.axvline(boundary.estimate, color="tab:blue", ls="--", lw=1, label="crossover")
    elif boundary.low is not None:  # the boundary is in units of work: back to the varied dimension
        per_unit = ordered[0].work / x[0]
        bottom.axvspan(boundary.low / per_unit, boundary.high / per_unit, color="tab:blue", alpha=0.12)
        bottom.axvline(boundary.estimate / per_unit, color="tab:blue", ls="--", lw=1, label="crossover")
    for ax in (top, bottom):
        ax.set_xscale("log")
    bottom.set_yscale("log")
    bottom.set_xlabel(label)
    bottom.set_ylabel(f"{names[0]} / {names[1]}")
    bottom.legend(fontsize="x-small")
    bottom.grid(alpha=0.3, which="both")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
