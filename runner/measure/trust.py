"""When a measured figure may be believed: the rules every command applies to fractions of peak.

The peak kernel is timed in alternation with the kernel it judges, sample by sample, so a busy
neighbour or a clock change hits both. The fraction divides the kernel's median by a high
percentile of those peak samples: the peak is what the core *can* do, so its best samples
estimate it, while the kernel's typical sample is what it *does*. A fraction above 1.0 is then
a measurement defect, never a result: it is measured again, and if it persists the record says
the measurement was disturbed instead of reporting it as `ok`.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")

#: Percentile of the alternated peak samples that stands for the core's peak.
PEAK_PERCENTILE = 90
#: Sample coefficient of variation above which a figure is flagged noisy (and a sweep re-screens it).
NOISY_CV = 0.10
#: Re-measurements of a result above the peak before it is recorded as disturbed.
REMEASUREMENTS = 2
#: The error text of a `disturbed` record.
DISTURBED = "above the FMA peak measured alongside it after re-measuring: the machine was disturbed"


def peak_reference(samples: tuple[float, ...] | list[float]) -> float:
    """The peak a fraction is taken against: the PEAK_PERCENTILE-th of the peak samples."""
    return float(np.percentile(samples, PEAK_PERCENTILE))


def fraction(median: float, peak_samples: tuple[float, ...] | list[float]) -> float:
    return median / peak_reference(peak_samples)


def above_peak(value: float | None) -> bool:
    """True for a fraction no kernel can reach: the measurement, not the kernel, is at fault."""
    return value is not None and value > 1.0


def is_noisy(cv: float | None) -> bool:
    return cv is not None and cv > NOISY_CV


def until_plausible(measure: Callable[[], T], fraction_of: Callable[[T], float | None]) -> tuple[T, bool]:
    """Measure; while the fraction of peak is above 1.0, measure again (REMEASUREMENTS times at most).
    Returns the last result and whether it was still implausible (a disturbed measurement)."""
    result = measure()
    for _ in range(REMEASUREMENTS):
        if not above_peak(fraction_of(result)):
            return result, False
        result = measure()
    return result, above_peak(fraction_of(result))
