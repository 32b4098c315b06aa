"""Human output: aligned tables. Scripts use --json instead."""
from __future__ import annotations

from typing import Callable, Iterable

from tabulate import tabulate

from kernels_mlir.spec import DTYPES
from pipelines.targets import Target

from runner.measure.record import Record
from runner.report.display import markdown_cell, terminal
from runner.measure.timing import Measurement
from runner.store.results import FINAL, FULL


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _cv(r: Record) -> str:
    """The sample cv, flagged when it is above the noise threshold (the figure is not to be trusted alone)."""
    m = r.measurement
    return "" if m is None else f"{100 * m.cv:.1f}%" + (" noisy" if r.noisy else "")


def _peak(r: Record) -> str:
    """The peak the fraction is against: the percentile of samples alternated with the kernel, its width,
    and the dot-product instruction when it is not FMAs."""
    if r.peak_gflops is None:
        return ""
    return f"{r.peak_gflops:.1f} @{r.vector_bits}b" + (f" {r.strategy.instruction}" if r.strategy.instruction else "")


def rate_header(dtypes: Iterable[str]) -> str:
    """GFLOP/s, or GOP/s once integer kernels are in the table (both count a multiply-add as 2)."""
    return "GOP/s" if any(DTYPES[d].rate == "GOP/s" for d in dtypes) else "GFLOP/s"


def results_table(records: Iterable[Record]) -> str:
    records = list(records)
    rows = []
    for r in records:
        k, m = r.strategy.kernel, r.measurement
        rows.append([
            terminal(r.strategy.name), r.extra.get("candidate_key", r.strategy.hash)[:8], f"{k.mr}x{k.nr}x{k.kc}",
            k.dtype, r.strategy.llvm.opt, r.status,
            "" if m is None else f"{m.median:.2f}",
            "" if m is None else f"{m.minimum:.1f}-{m.maximum:.1f}",
            _cv(r), _peak(r), _pct(r.fraction_of_peak),
            "" if r.compile_seconds is None else f"{r.compile_seconds:.2f}",
        ])
    headers = ["strategy", "hash", "mr x nr x kc", "dtype", "opt", "status",
               rate_header(r.strategy.kernel.dtype for r in records), "min-max", "cv", "peak", "of peak", "compile s"]
    return tabulate(rows, headers=headers, disable_numparse=True, colalign=("left",) * 6 + ("right",) * 6)


def mca_header(target: Target, records: list[dict]) -> str:
    """What the predictions below are: llvm-mca's scheduling model against the FMA datapath, and for SME
    kernels an instruction-mix bound against the row's cited outer-product rates."""
    models = sorted({r["model"] for r in records if r["model"] and not r.get("sme_bound")})
    datapath = "unknown: no predicted fraction" if target.fma is None else \
        f"{target.fma.pipes} FMA pipes x {target.fma.bits_per_pipe} bits"
    lines = []
    if models or not any(r.get("sme_bound") for r in records):
        lines.append(f"llvm-mca on {target.label} (-mcpu={target.cpu}, scheduling model {'/'.join(models) or '?'}); "
                     f"theoretical peak from the FMA datapath, {datapath}")
    if any(r.get("sme_bound") for r in records):
        unit = target.sme
        rates = ", ".join(f"{name} {rate.per_cycle:g}/cycle, latency {rate.latency}" for name, rate
                          in unit.outer_products) or "none cited: counts only"
        lines.append(f"SME on {target.label}: an instruction-mix bound, not a scheduling model (LLVM has none for "
                     f"SME): outer products at the row's rates ({rates}), each ZA tile's chain at its latency; "
                     "other instructions counted per outer product, not priced")
    return "\n".join(lines)


def mca_table(records: Iterable[dict]) -> str:
    """Rows of `ukl mca` records: the prediction next to the facts that usually explain it."""
    rows = []
    for r in records:
        verified = {True: "yes", False: "NO", None: "-"}[r["verified"]]
        rows.append([
            terminal(r["name"]), r["strategy_hash"][:8], r["status"],
            f"{verified} ({r['verification']})" if r["verification"] else verified,
            "" if r["cycles_per_k_step"] is None else f"{r['cycles_per_k_step']:.2f}",
            _pct(r["predicted_fraction_of_peak"]), _pct(r["model_ceiling"]),
            _pct(r["predicted_fraction_of_model_peak"]),
            _registers(r),
            r.get("spills", ""), terminal(r["bottleneck_words"] or r["error"]),
        ])
    headers = ["strategy", "hash", "status", "verified", "cycles/k-step", "predicted of peak", "model max",
               "of model peak", "vregs", "spills", "bottleneck"]
    return tabulate(rows, headers=headers, disable_numparse=True, colalign=("left",) * 4 + ("right",) * 6 + ("left",))


def _registers(r: dict) -> str:
    """Vector registers used of those there are, and ZA tiles where an SME kernel uses them."""
    if "vector_registers_used" not in r:
        return ""
    used = f"{r['vector_registers_used']}/{r['vector_registers_available']}"
    return f"{used} + ZA {r['za_tiles_used']}" if r.get("za_tiles_used") else used


def gemm_table(records: Iterable[Record]) -> str:
    """GEMM records: our GFLOP/s next to each baseline's (OpenBLAS, BLIS), measured in alternation, and
    the ratio of ours to each with its 95% interval."""
    return baseline_table(records, [
        ("hash", lambda r: r.extra["gemm_hash"][:8]), ("M x N x K", lambda r: "x".join(map(str, r.extra["shape"]))),
        ("dtype", lambda r: r.strategy.kernel.dtype),
        ("mc/nc/kc", lambda r: f"{r.extra['gemm']['mc']}/{r.extra['gemm']['nc']}/{r.extra['gemm']['kc']}")])


def _baseline_names(records: list[Record]) -> list[str]:
    return list(dict.fromkeys(b["name"] for r in records for b in r.extra.get("baselines", [])))


def _baseline_cells(r: Record, names: list[str], figure: Callable[[dict], str], digits: int) -> list[str]:
    """Each named baseline's figure and our ratio to it with its 95% interval (blank where it did not run)."""
    by_name = {b["name"]: b for b in r.extra.get("baselines", [])}
    cells = []
    for name in names:
        b = by_name.get(name)
        cells += ["", ""] if b is None else [
            figure(b), f"{b['ratio']:.{digits}f} [{b['ratio_ci'][0]:.{digits}f}, {b['ratio_ci'][1]:.{digits}f}]"]
    return cells


def small_gemm_table(records: Iterable[Record]) -> str:
    """Small-GEMM records per call: our ns/call next to each baseline's, measured in alternation, and our
    speed ratio to each with its 95% interval."""
    records = list(records)
    names = _baseline_names(records)
    rows = []
    for r in records:
        m, x = r.measurement, r.extra
        flops = m.flops_per_iteration if m is not None else 0
        cells = _baseline_cells(r, names, lambda b: f"{flops / b['gflops']:.1f}", 2)
        rows.append([terminal(r.strategy.name), "x".join(map(str, x["shape"])), x["small_gemm"]["layout"], r.status, "" if m is None else f"{flops / m.median:.1f}",
                     "" if m is None else f"{m.median:.2f}", *cells, _pct(r.fraction_of_peak)])
    headers = ["strategy", "B x M x N x K", "layout", "status", "ns/call", "GFLOP/s",
               *[h for name in names for h in (f"{name} ns", f"ours/{name} [95% CI]")], "of peak"]
    return tabulate(rows, headers=headers, disable_numparse=True,
                    colalign=("left",) * 4 + ("right",) * (3 + 2 * len(names)))


def baseline_table(records: Iterable[Record], describe: list[tuple[str, Callable[[Record], str]]]) -> str:
    """Records of a kind with baselines: the strategy, the kind's `describe` columns, our GFLOP/s next to
    each baseline's, measured in alternation, and the ratio of ours to each with its 95% interval."""
    records = list(records)
    names = _baseline_names(records)
    rows = []
    for r in records:
        m = r.measurement
        cells = _baseline_cells(r, names, lambda b: f"{b['gflops']:.2f}", 3)
        rows.append([terminal(r.strategy.name), *(cell(r) for _, cell in describe), r.status,
                     "" if m is None else f"{m.median:.2f}", *cells, _cv(r), _peak(r), _pct(r.fraction_of_peak)])
    headers = ["strategy", *(h for h, _ in describe), "status", "GFLOP/s",
               *[h for name in names for h in (name, f"ours/{name} [95% CI]")], "cv", "peak", "of peak"]
    return tabulate(rows, headers=headers, disable_numparse=True,
                    colalign=("left",) * (2 + len(describe)) + ("right",) * (4 + 2 * len(names)))


def progress_line(r: Record) -> str:
    """One finished candidate, as it finishes: status, name, GFLOP/s, fraction of peak, noise flag."""
    phase = r.extra.get("phase", FULL)
    head = f"{r.status:<13} {terminal(r.strategy.name)}" + ("" if phase == FULL else f" [{phase}]")
    if r.measurement is None:
        return head + ("" if not r.error else f": {terminal(r.error)[:300]}")
    return (head + f": {r.measurement.median:.2f} GFLOP/s, {_pct(r.fraction_of_peak)} of peak, cv {_cv(r)}")


def peak_line(dtype: str, bits: int, lanes: int, chains: int, m: Measurement, instruction: str | None = None) -> str:
    what = f"{instruction} peak ({dtype}, {bits}-bit, {chains} chains)" if instruction else \
        f"FMA peak ({dtype}, {bits}-bit, {chains} chains x {lanes} lanes)"
    return (f"{what}: {m.median:.2f} {rate_header([dtype])} "
            f"(min {m.minimum:.2f}, max {m.maximum:.2f}, cv {100 * m.cv:.1f}%)")


def noise_line(records: Iterable[Record]) -> str:
    cvs = sorted(r.measurement.cv for r in records if r.measurement is not None)
    if not cvs:
        return ""
    worst = cvs[-1]
    return (f"noise: sample cv {100 * cvs[len(cvs) // 2]:.1f}% median, {100 * worst:.1f}% worst; "
            f"medians closer than about {200 * worst:.1f}% are within the noise" if worst > 0 else "")


def markdown_summary(title: str, records: list[Record], summary: str) -> str:
    """A sweep for a CI log or a pull request: every candidate's outcome, the leaders' final figures."""
    lines = [f"# {markdown_cell(title)}", "", markdown_cell(summary), "", "| phase | strategy | hash | status | GFLOP/s | cv | of peak | error |",
             "|---|---|---|---|---:|---:|---:|---|"]
    order = sorted(records, key=lambda r: (r.extra.get("phase") != FINAL, r.status != "ok",
                                           -(r.measurement.median if r.measurement else 0)))
    for r in order:
        m = r.measurement
        error = markdown_cell((r.error or "")[:120])
        lines.append(f"| {r.extra.get('phase', FULL)} | {markdown_cell(r.strategy.name)} | `{r.strategy.hash[:8]}` | {r.status} | "
                     f"{'' if m is None else f'{m.median:.2f}'} | {_cv(r)} | "
                     f"{_pct(r.fraction_of_peak)} | {error} |")
    return "\n".join(lines) + "\n"
