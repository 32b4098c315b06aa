"""Human output: aligned tables. Scripts use --json instead."""
from __future__ import annotations

from typing import Iterable

from tabulate import tabulate

from .record import Record
from .timing import Measurement


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def results_table(records: Iterable[Record]) -> str:
    rows = []
    for r in records:
        k, m = r.strategy.kernel, r.measurement
        rows.append([
            r.strategy.name, r.strategy.hash[:8], f"{k.mr}x{k.nr}x{k.kc}", k.dtype, r.strategy.llvm.opt, r.status,
            "" if m is None else f"{m.median:.2f}",
            "" if m is None else f"{m.minimum:.1f}-{m.maximum:.1f}",
            "" if m is None else f"{100 * m.cv:.1f}%",
            _pct(r.fraction_of_peak),
            "" if r.compile_seconds is None else f"{r.compile_seconds:.2f}",
        ])
    headers = ["strategy", "hash", "mr x nr x kc", "dtype", "opt", "status", "GFLOP/s",
               "min-max", "cv", "of peak", "compile s"]
    return tabulate(rows, headers=headers, disable_numparse=True, colalign=("left",) * 6 + ("right",) * 5)


def peak_line(dtype: str, lanes: int, chains: int, m: Measurement) -> str:
    return (f"FMA peak ({dtype}, {chains} chains x {lanes} lanes): {m.median:.2f} GFLOP/s "
            f"(min {m.minimum:.2f}, max {m.maximum:.2f}, cv {100 * m.cv:.1f}%)")


def noise_line(records: Iterable[Record]) -> str:
    cvs = sorted(r.measurement.cv for r in records if r.measurement is not None)
    if not cvs:
        return ""
    worst = cvs[-1]
    return (f"noise: sample cv {100 * cvs[len(cvs) // 2]:.1f}% median, {100 * worst:.1f}% worst; "
            f"medians closer than about {200 * worst:.1f}% are within the noise" if worst > 0 else "")
