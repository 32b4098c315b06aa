"""`ukl report`: what a results store says: the best strategies, what failed, and what each knob does.

One result per (strategy, target, host): the most trustworthy measurement of it (a sweep's
final re-measurement, else a full `ukl run`, else a screening figure).
"""
from __future__ import annotations

import base64
import dataclasses
import math
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import numpy as np
import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from kernels_mlir.spec import DTYPES

from runner.kinds import KINDS
from runner.measure.record import rank
from runner.measure.trust import is_noisy
from runner.report.display import terminal
from runner.report.optuna_plots import close, optuna_figures
from runner.search.space import knobs, knobs_of
from runner.search.sweep import rejection_reasons
from runner.store.database import Database, as_database
from runner.store.results import FINAL, FULL, RESCREEN, SCREEN, SCREENING, Store
from runner.report.routes import HEADERS, RouteGroup, route_groups, route_rows
from runner.studies.routes import KIND as ROUTE_KIND
from runner.studies.crossover import boundary_from_json, plot as crossover_plot, point_from_json

#: Text in figures comes from databases: never parsed as math ($...$ would be TeX to matplotlib).
matplotlib.rcParams["text.parse_math"] = False

PHASE_TRUST = {FINAL: 3, FULL: 2, RESCREEN: 1, SCREEN: 1}
TOP_HEADERS = ["strategy", "hash", "target", "phase", "GFLOP/s", "min-max", "cv", "of peak", "host"]


@dataclass(frozen=True)
class Plot:
    file: str  # name of the PNG under --plots
    title: str
    caption: str
    png: bytes

    @property
    def png_base64(self) -> str:
        return base64.b64encode(self.png).decode()


def best_results(rows: list[dict], target: str | None = None) -> list[dict]:
    """Per (hash, kind of host) the most trustworthy verified row, else its latest failure; and the wrong
    answer whenever the latest verification of that hash was wrong."""
    chosen: dict[tuple, dict] = {}
    latest_check: dict[tuple, dict] = {}  # the newest row that ran the verification, right or wrong
    for row in rows:
        if target is not None and row["target"] != target:
            continue
        key = (row["candidate_key"], host_group(row))
        if row["correct"] is not None and (key not in latest_check or row["id"] > latest_check[key]["id"]):
            latest_check[key] = row
        old = chosen.get(key)
        rank = (row["status"] == "ok", PHASE_TRUST.get(row["phase"], 0), row["id"])
        if old is None or rank > (old["status"] == "ok", PHASE_TRUST.get(old["phase"], 0), old["id"]):
            chosen[key] = row
    for key, row in latest_check.items():  # a kernel that last verified wrong is wrong, whatever it did before
        if not row["correct"]:
            chosen[key] = row
    results = list(chosen.values())
    for row in results:
        row["knobs"] = _knobs(row)
    return results


def _knobs(row: dict) -> dict | None:
    """The knob values of a stored row (its strategy's, and its kind's), or None when the row's JSON is
    not what ukl writes: the row is still listed, but no plot reads knobs off it."""
    kind = KINDS.get(row["kind"])  # (a plugin's kind, when its module is not loaded, shows its strategy's)
    try:
        return {**knobs_of(json.loads(row["strategy_json"])), **({} if kind is None else kind.knob_values(_record(row)))}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


#: The figures a verified row must have to be plotted (a store may hold NULL where NaN was written).
FIGURES = ("gflops", "gflops_min", "gflops_max", "cv", "fraction_of_peak")


def plottable(row: dict) -> bool:
    return row["status"] == "ok" and row["knobs"] is not None and all(
        isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in FIGURES)


def ranked(results: list[dict]) -> list[dict]:
    """The verified results, full-length figures (final, full) above screening ones, each group in the
    order every listing uses (runner.measure.record.rank: GFLOP/s, then fraction of peak)."""
    return sorted((r for r in results if r["status"] == "ok"), key=lambda r: (r["phase"] in SCREENING, *rank(r)))


def host_group(row: dict) -> str:
    """The kind of host a result was measured on, with its target (rows from before schema 4 have no
    host_kind: their CPU model and target name stand for it)."""
    return row.get("host_kind") or f"{row['host_cpu']}; {row['target']}"


def best_per_host(results: list[dict]) -> dict[str, dict[str, dict]]:
    """Side by side: for each experiment (one space), the best verified result of each kind of host."""
    table: dict[str, dict[str, dict]] = {}
    for r in ranked(results):  # best first
        table.setdefault(r.get("experiment") or "", {}).setdefault(host_group(r), r)
    return table


def side_by_side_rows(table: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """Headers (experiment, then each kind of host) and one row per experiment."""
    hosts = sorted({h for by_host in table.values() for h in by_host})
    def cell(r: dict | None) -> str:
        return "-" if r is None else f"{r['name']}: {r['gflops']:.2f} ({100 * r['fraction_of_peak']:.1f}% of peak)"
    return ["experiment", *hosts], [[e, *(cell(by_host.get(h)) for h in hosts)] for e, by_host in sorted(table.items())]


def _figure(value, form: str) -> str:
    """A stored figure as text, "?" where the store holds none (NULL) or a non-finite one."""
    return form.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else "?"


def top_row(r: dict) -> list[str]:
    cv = r.get("cv")
    noisy = isinstance(cv, (int, float)) and math.isfinite(cv) and is_noisy(cv)
    return [r["name"], (r.get("candidate_key") or r["strategy_hash"])[:8], r["target"], r["phase"],
            _figure(r["gflops"], "{:.2f}"), f"{_figure(r['gflops_min'], '{:.1f}')}-{_figure(r['gflops_max'], '{:.1f}')}",
            _figure(None if cv is None else 100 * cv, "{:.1f}%") + (" noisy" if noisy else ""),
            _figure(None if r["fraction_of_peak"] is None else 100 * r["fraction_of_peak"], "{:.1f}%"), r["host_cpu"]]


def kind_table(kind_name: str, results: list[dict], n: int) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): the best `n` verified results of each of the kind's groups (a GEMM's: its shape),
    group after group, with the columns the kind adds after the strategy's name."""
    kind = KINDS.get(kind_name)
    groups: dict[str, list[dict]] = {}
    for r in ranked(results):
        groups.setdefault("" if kind is None else kind.report_group(_record(r)), []).append(r)
    chosen = [r for group in groups.values() for r in group[:n]]
    records = [_record(r) for r in chosen]
    extra = [] if kind is None else kind.report_columns(records)
    rows = [[row[0], *(terminal(cell(record)) for _, cell in extra), *row[1:]]
            for row, record in zip(map(top_row, chosen), records)]
    return [TOP_HEADERS[0], *(header for header, _ in extra), *TOP_HEADERS[1:]], rows


def context_label(results: list[dict]) -> str:
    """What the figures are about, so a PNG means something on its own: experiments, targets, dtypes, kc."""
    def values(key: str, of=lambda r, k: r.get(k)) -> str:
        found = sorted({str(of(r, key)) for r in results if of(r, key) is not None})
        return ", ".join(found[:4]) + (f" (+{len(found) - 4})" if len(found) > 4 else "")
    knob = lambda r, k: r.get("knobs", {}).get(k)  # noqa: E731
    parts = [values("experiment"), f"target {values('target')}", values("dtype", knob), f"kc {values('kc', knob)}"]
    return terminal("; ".join(p for p in parts if p and not p.endswith(" ")))  # values come from a database


def _png(fig: Figure, context: str = "") -> bytes:
    """The figure as PNG, with `context` (context_label) on top, under any title it has."""
    if context:
        title = fig.get_suptitle()
        fig.suptitle(f"{title}\n{context}" if title else context, fontsize="medium" if title else "small",
                     y=1.0 + (0.08 if title else 0.04))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def heatmap(ok: list[dict]) -> Plot | None:
    best: dict[tuple[int, int], float] = {}
    for r in ok:
        key = (r["knobs"]["mr"], r["knobs"]["nr"])
        best[key] = max(best.get(key, 0.0), r["fraction_of_peak"])
    mrs, nrs = sorted({k[0] for k in best}), sorted({k[1] for k in best})
    if len(mrs) < 2 and len(nrs) < 2:
        return None
    grid = [[best.get((m, n), float("nan")) for n in nrs] for m in mrs]
    fig = Figure(figsize=(1.2 + 0.9 * len(nrs), 1.0 + 0.6 * len(mrs)))
    ax = fig.subplots()
    grid = [[100 * value for value in row] for row in grid]  # percent, as the cells and the colour bar say
    top = max(100.0, max(v for row in grid for v in row if v == v))  # never clip (a value above 100 is a defect)
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=top, aspect="auto")
    ax.set_xticks(range(len(nrs)), [str(n) for n in nrs])
    ax.set_yticks(range(len(mrs)), [str(m) for m in mrs])
    ax.set_xlabel("nr")
    ax.set_ylabel("mr")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value == value:  # not NaN
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="w" if value < 60 else "k")
    fig.colorbar(image, ax=ax, label="% of the measured peak")
    ax.set_title("Best fraction of peak per register tile", fontsize="medium")
    return Plot("tile-heatmap.png", "Fraction of peak over the register tile",
                "Best verified strategy for each mr x nr (percent of the measured FMA peak); blank: none verified.",
                _png(fig, context_label(ok)))


def gflops_vs_kc(ok: list[dict]) -> Plot | None:
    """Best GFLOP/s per tile and kc with its min-max spread, under the measured peak at each width."""
    series: dict[tuple[int, int], dict[int, dict]] = defaultdict(dict)
    for r in ok:
        k = r["knobs"]
        held = series[(k["mr"], k["nr"])].get(k["kc"])
        if held is None or r["gflops"] > held["gflops"]:
            series[(k["mr"], k["nr"])][k["kc"]] = r
    if len({kc for points in series.values() for kc in points}) < 2:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for (mr, nr), points in sorted(series.items()):
        kcs = sorted(points)
        rows = [points[kc] for kc in kcs]
        ax.errorbar(kcs, [r["gflops"] for r in rows], marker="o", capsize=2, label=f"{mr}x{nr}",
                    yerr=[[r["gflops"] - r["gflops_min"] for r in rows], [r["gflops_max"] - r["gflops"] for r in rows]])
    peaks: dict[int, list[float]] = defaultdict(list)
    for r in ok:
        if r.get("peak_gflops") and r.get("vector_bits"):
            peaks[r["vector_bits"]].append(r["peak_gflops"])
    for bits, values in sorted(peaks.items()):
        ax.axhline(float(np.median(values)), color="k", ls="--", lw=0.8)
        ax.annotate(f"measured peak, {bits}-bit", (0.01, float(np.median(values))), fontsize="x-small",
                    va="bottom", xycoords=("axes fraction", "data"))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("kc (k values per call)")
    ax.set_ylabel("GFLOP/s (best strategy, min-max)")
    ax.set_title("GFLOP/s against kc, per register tile", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncols=2, loc="best")
    return Plot("gflops-vs-kc.png", "GFLOP/s against kc",
                "Best verified strategy per tile and kc (bars: fastest and slowest sample), under the FMA peak "
                "measured alongside at each vector width (dashed): short kc pays the C load/store and the call on "
                "every k-panel.", _png(fig, context_label(ok)))


@dataclass(frozen=True)
class KnobEffect:
    """A controlled comparison: pairs of verified results identical in every knob but `knob` (same
    tile, same target and host), one at `baseline`, one at `value`; each pair's fraction of peak at
    `value` over the one at `baseline`."""

    knob: str
    baseline: str
    value: str
    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(np.median(self.ratios))


def paired_effects(ok: list[dict]) -> list[KnobEffect]:
    """Every knob the results vary, as paired ratios against its default value (or, when no pair has
    the default, its most common value). A knob that only ever changes together with another (legalize
    with the tile, say) has no pairs, and so no effect is claimed for it."""
    table = {**knobs(), **{k.name: k for kind in KINDS.values() for k in kind.knobs}}
    effects = []
    for name, knob in table.items():
        if not knob.effect or not ok or name not in ok[0]["knobs"] or len({str(r["knobs"][name]) for r in ok}) < 2:
            continue
        by_rest: dict[tuple, dict[str, float]] = defaultdict(dict)
        for r in ok:
            rest = (r["target"], r["host_cpu"], *sorted((k, str(v)) for k, v in r["knobs"].items() if k != name))
            value = str(r["knobs"][name])
            by_rest[rest][value] = max(by_rest[rest].get(value, 0.0), r["fraction_of_peak"])
        paired = [values for values in by_rest.values() if len(values) > 1]
        if not paired:
            continue
        counts = Counter(v for values in paired for v in values)
        baseline = str(knob.default) if str(knob.default) in counts else counts.most_common(1)[0][0]
        for value in sorted(counts, key=lambda v: (len(v), v)):
            ratios = tuple(values[value] / values[baseline] for values in paired
                           if value != baseline and value in values and baseline in values and values[baseline] > 0)
            if ratios:
                effects.append(KnobEffect(name, baseline, value, ratios))
    return effects


def knob_effects(ok: list[dict]) -> Plot | None:
    effects = paired_effects(ok)
    if not effects:
        return None
    by_knob: dict[str, list[KnobEffect]] = defaultdict(list)
    for effect in effects:
        by_knob[effect.knob].append(effect)
    count = len(by_knob)
    fig = Figure(figsize=(3.4 * min(count, 3), 3.2 * (1 + (count - 1) // 3)))
    axes = fig.subplots(1 + (count - 1) // 3, min(count, 3), squeeze=False).ravel()
    for ax, (knob, group) in zip(axes, by_knob.items()):
        ax.boxplot([e.ratios for e in group], tick_labels=[f"{e.value}\nn={len(e.ratios)}" for e in group])
        ax.axhline(1.0, color="grey", linewidth=1)
        spread = [x for e in group for x in e.ratios]
        if max(spread) / min(spread) > 3:  # ratios: equal factors up and down look equal on a log axis
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{knob} (vs {group[0].baseline})", fontsize="medium")
        ax.tick_params(axis="x", labelsize="small")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[count:]:
        ax.set_visible(False)
    axes[0].set_ylabel("fraction of peak, paired ratio")
    fig.suptitle("Paired effect of each knob")
    fig.tight_layout()
    return Plot("knob-effects.png", "The effect of each knob, in controlled pairs",
                "Each box: pairs of verified strategies identical in every other knob (same tile, target and host), "
                "the fraction of peak at that value over the one at the baseline value; n = pairs. Above 1: "
                "the value helps. A knob that never varies alone has no pairs and no box.",
                _png(fig, context_label(ok)))


def _record(row: dict) -> dict:
    """A stored result's record JSON; rows from before the store kept it get their columns."""
    if row.get("record_json"):
        try:
            found = json.loads(row["record_json"])
            if isinstance(found, dict):
                return found
        except ValueError:
            pass  # a damaged row: its columns stand for it
    keys = ("name", "strategy_hash", "target", "status", "correct", "max_abs_error", "gflops", "gflops_min",
            "gflops_max", "cv", "peak_gflops", "fraction_of_peak", "vector_bits", "compile_seconds", "error", "phase")
    return {k: row.get(k) for k in keys}


@dataclass
class Section:
    """The results of one problem kind: its table (its own columns, ranked per group) and its plots."""

    kind: str
    results: list[dict]
    headers: list[str]
    top: list[list[str]]
    plots: list[Plot]
    #: The kind's small tables under its own: (title, headers, rows).
    summaries: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


@dataclass
class Report:
    db: Database
    sections: list[Section]
    #: Crossover plots (studies, not results of a kind).
    crossover_plots: list[Plot]
    #: Convolution route studies, per target and host CPU, each with its rule.
    route_groups: list[RouteGroup] = field(default_factory=list)
    #: Why sweeps rejected points before compiling (reason -> count).
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def results(self) -> list[dict]:
        return [r for s in self.sections for r in s.results]

    @property
    def plots(self) -> list[Plot]:
        return [p for s in self.sections for p in s.plots] + self.crossover_plots + self.route_plots

    @property
    def route_plots(self) -> list[Plot]:
        return [Plot(f"conv2d-routes-{i}.png", g.title, "Each route's median GFLOP/s on each layer (log scale), with "
                     "ONNX Runtime's better configuration timed in the same alternation (dashed).",
                     _png(g.plot(), f"{g.target} on {g.host_cpu}"))
                for i, g in enumerate(self.route_groups, start=1)]

    @property
    def hosts(self) -> list[str]:
        return sorted({host_group(r) for r in self.results})

    @property
    def best_per_host(self) -> dict[str, dict[str, dict]]:
        return best_per_host(self.results)

    @property
    def statuses(self) -> list[tuple[str, int]]:
        return sorted(Counter(r["status"] for r in self.results).items())

    def summary(self) -> str:
        kinds = ", ".join(f"{len(s.results)} {s.kind}" for s in self.sections)
        text = f"{len(self.results)} results ({kinds or 'none'}): " + \
            ", ".join(f"{n} {s}" for s, n in self.statuses) + "."
        if self.rejections:
            text += f" Sweeps: {rejection_reasons(self.rejections)}."
        return text

    @property
    def title(self) -> str:
        """The experiments the results come from (the database's name when none is recorded)."""
        names = sorted({r["experiment"] for r in self.results if r.get("experiment")})
        return ", ".join(names) or (self.db.path.stem if self.db.path is not None else self.db.url.database or "")

    def ranked_records(self, limit: int | None = None) -> list[dict]:
        """Results as their records (the JSON `ukl run` printed when it measured them, as stored): the
        best `limit` verified ones in rank order, then every failure."""
        found = []
        for section in self.sections:
            failed = [r for r in section.results if r["status"] != "ok"]
            found += [_record(r) for r in ranked(section.results)[:limit] + failed]
        return found

    def html(self) -> str:
        env = jinja2.Environment(loader=jinja2.PackageLoader("runner.report", "templates"), autoescape=True)
        failures = [(r["name"], r["status"], r["error"]) for r in self.results if r["status"] != "ok"]
        return env.get_template("report.html.j2").render(
            title=self.title, db=self.db, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            hosts=sorted({r["host_cpu"] for r in self.results}), targets=sorted({r["target"] for r in self.results}),
            side_by_side=side_by_side_rows(self.best_per_host) if len(self.hosts) > 1 else None,
            summary=self.summary(), statuses=self.statuses, failures=failures,
            sections=[{"kind": s.kind, "headers": s.headers, "top": s.top,
                       "text_columns": {i + 1 for i, h in enumerate(s.headers) if h in TEXT_HEADERS},
                       "phase_column": s.headers.index("phase"), "summaries": s.summaries,
                       "plots": [_plot_json(p) for p in s.plots]} for s in self.sections],
            crossovers=[_plot_json(p) for p in self.crossover_plots],
            route_groups=[{"title": g.title, "headers": HEADERS, "rows": route_rows(g.studies),
                           "rule": g.report.rule.text(), "scoring": g.report.scoring,
                           "regret": {k: f"{100 * v:.1f}%" for k, v in g.report.regret.items()}}
                          for g in self.route_groups],
            route_plots=[_plot_json(p) for p in self.route_plots])


#: Columns the HTML aligns left: names and words, not figures.
TEXT_HEADERS = {"hash", "target", "phase", "host", "M x N x K", "blocking"}


def _plot_json(p: Plot) -> dict[str, str]:
    return {"title": p.title, "caption": p.caption, "png": p.png_base64}


def measured_and_predicted(ok: list[dict], predictions: dict[tuple[str, str], dict]
                           ) -> list[tuple[str, float, float | None]]:
    """(name, measured fraction of peak, predicted fraction or None) for the best results: the measured
    one against the FMA peak timed alongside, the predicted one llvm-mca's against its model's own peak
    kernel (`ukl mca --db`), for the same strategy and target."""
    rows = []
    for r in ranked(ok)[:TOP_FRACTIONS]:
        predicted = predictions.get((r["strategy_hash"], r["target"]))
        rows.append((r["name"], r["fraction_of_peak"],
                     None if predicted is None else predicted.get("predicted_fraction_of_model_peak")))
    return rows


#: Results the fraction-of-peak chart shows.
TOP_FRACTIONS = 12


def fraction_chart(ok: list[dict], predictions: dict[tuple[str, str], dict]) -> Plot | None:
    rows = measured_and_predicted(ok, predictions)
    if not rows:
        return None
    fig = Figure(figsize=(8, 0.6 + 0.38 * len(rows)))
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [100 * m for _, m, _ in rows], height=0.4, label="measured (against the peak timed alongside)")
    predicted = [(i, p) for i, (_, _, p) in enumerate(rows) if p is not None]
    if predicted:
        ax.barh([i + 0.2 for i, _ in predicted], [100 * p for _, p in predicted], height=0.4,
                label="predicted by llvm-mca (against its model's peak)")
    ax.axvline(100, color="k", ls="--", lw=1, label="measured peak")
    ax.set_yticks(y, [terminal(name) for name, _, _ in rows], fontsize="small")  # names come from a database
    ax.invert_yaxis()
    ax.set_xlabel("% of peak")
    ax.set_xlim(0, 110)
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set_title("Fraction of peak, measured and predicted", fontsize="medium")
    return Plot("fraction-of-peak.png", "Fraction of peak, measured and predicted",
                "The best results' fraction of the peak measured alongside them (the dashed line), next to "
                "llvm-mca's prediction where `ukl mca --db` was run for the same strategy and target.",
                _png(fig, context_label(ok)))


def crossover_plots(crossovers: list[dict]) -> list[Plot]:
    """Every stored crossover, redrawn from its stored shapes (nothing is measured again)."""
    plots = []
    for i, c in enumerate(crossovers, start=1):
        if not c["points"]:
            continue  # a crossover stopped before its first shape: nothing to draw
        names = c["routes"]
        points = [point_from_json(p, names) for p in c["points"]]
        title = f"{c['experiment']}: {names[0]} vs {names[1]}"
        png = crossover_plot(points, boundary_from_json(c["boundary"]), names,
                             f"{title}\n{c['target']} on {c['host_cpu']}, {c['dtype']}, {c['measured_at']}",
                             DTYPES[c["dtype"]].rate)
        plots.append(Plot(f"crossover-{i}.png", f"Crossover {title}",
                          f"{c['boundary']['boundary']}. Top: each route's median over the shapes; bottom: the "
                          "speed ratio of the first two with its 95% interval (grey band: the noise floor).", png))
    return plots


def baselines_by_shape(ok: list[dict]) -> Plot | None:
    """Per shape, our best GFLOP/s beside each baseline's measured in the same alternation."""
    best: dict[str, dict] = {}
    for r in ok:
        record = _record(r)
        shape = "x".join(map(str, record.get("shape") or []))
        if record.get("baselines") and (shape not in best or r["gflops"] > best[shape]["gflops"]):
            best[shape] = record
    if not best:
        return None
    shapes = sorted(best, key=lambda s: [int(d) for d in s.split("x")] if s else [])
    names = list(dict.fromkeys(b["name"] for r in best.values() for b in r["baselines"]))
    fig = Figure(figsize=(1.6 + 1.1 * len(shapes) * (1 + len(names)) / 2, 4))
    ax = fig.subplots()
    width = 0.8 / (1 + len(names))
    x = np.arange(len(shapes))
    ax.bar(x, [best[s]["gflops"] for s in shapes], width, label="ours (best)")
    for i, name in enumerate(names, start=1):
        values = [next((b.get("gflops") or 0.0 for b in best[s]["baselines"] if b["name"] == name), 0.0)
                  for s in shapes]
        ax.bar(x + i * width, values, width, label=terminal(name))
    ax.set_xticks(x + width * len(names) / 2, shapes, fontsize="small")
    ax.set_xlabel("M x N x K")
    ax.set_ylabel("GFLOP/s (median)")
    ax.legend(fontsize="x-small")
    ax.set_title("Our best GEMM per shape beside each baseline", fontsize="medium")
    return Plot("gemm-baselines.png", "GFLOP/s per shape beside each baseline",
                "For each shape, the best verified GEMM and each library timed in the same alternation on the "
                "same operands (their ratios with 95% intervals are in the table).", _png(fig, context_label(ok)))


def _optuna(ok: list[dict]) -> list[Plot]:
    plots = []
    for file, title, caption, figure in optuna_figures(ok):
        plots.append(Plot(file, title, caption, _png(figure, context_label(ok))))
        close(figure)
    return plots


#: The plots a kind may ask for (ProblemKind.plots), by name: each from the kind's verified results.
PLOTS = {
    "fraction": lambda ok, predictions: [fraction_chart(ok, predictions)],
    "tile_heatmap": lambda ok, predictions: [heatmap(ok)],
    "gflops_vs_kc": lambda ok, predictions: [gflops_vs_kc(ok)],
    "knob_effects": lambda ok, predictions: [knob_effects(ok)],
    "baselines": lambda ok, predictions: [baselines_by_shape(ok)],
    "optuna": lambda ok, predictions: _optuna(ok),
}


def build_report(db: Database | Path, top: int, target: str | None = None, kind: str | None = None) -> Report:
    """A section per problem kind the store holds (or only `kind`), each with its own table and plots;
    stored crossovers and sweeps' rejection counts beside them."""
    with Store(db, readonly=True) as store:
        rows = list(store.rows(kind=kind))
        crossovers, rejections = store.crossovers(target), store.rejections(target)
        predictions = store.predictions()
        studies = store.route_studies(target) if kind in (None, ROUTE_KIND) else []
    sections = []
    for name in dict.fromkeys(r["kind"] for r in rows):
        results = best_results([r for r in rows if r["kind"] == name], target)
        if not results:
            continue
        ok = [r for r in results if plottable(r)]
        wanted = KINDS[name].plots if name in KINDS else ("fraction",)
        plots = [dataclasses.replace(p, file=f"{name}-{p.file}")  # one folder holds every kind's plots
                 for plot in wanted for p in PLOTS[plot](ok, predictions) if p is not None]
        headers, table = kind_table(name, results, top)
        summaries = [] if name not in KINDS else KINDS[name].report_summaries(
            [{**_record(r), "target_cpu": r.get("target_cpu")} for r in ranked(results)])
        sections.append(Section(name, results, headers, table, plots, [
            (title, columns, [[terminal(cell) for cell in line] for line in lines])
            for title, columns, lines in summaries]))
    return Report(as_database(db), sections, crossover_plots(crossovers), route_groups(studies), rejections)
