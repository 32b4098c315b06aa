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


def plot(points: Sequence[ShapePoint], boundary: Boundary, names: Sequence[str], title: str) -> bytes:
    ordered = sorted(points, key=lambda p: p.work)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    x = [p.work for p in ordered]
    y = [p.ratio for p in ordered]
    err = [[p.ratio - p.ci_low for p in ordered], [p.ci_high - p.ratio for p in ordered]]
    colors = {"A": "tab:green", "B": "tab:red", "tie": "tab:gray"}
    ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.6", capsize=3)
    ax.scatter(x, y, c=[colors[p.winner] for p in ordered], zorder=3)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhspan(1 - MIN_EFFECT, 1 + MIN_EFFECT, color="0.9", zorder=0)
    if boundary.low is not None:
        ax.axvspan(boundary.low, boundary.high, color="tab:blue", alpha=0.12)
        ax.axvline(boundary.estimate, color="tab:blue", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("M x N x K")
    ax.set_ylabel(f"speed of {names[0]} / {names[1]}")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="both")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
