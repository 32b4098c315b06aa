"""The statistics every comparison uses: bootstrap intervals of a median ratio, the placement noise
floor, and the smallest effect ever called real."""
from __future__ import annotations

import numpy as np

#: Relative speed differences below this are never called real, whatever the interval says.
MIN_EFFECT = 0.01
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def bootstrap_ci(ratios: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """CONFIDENCE interval of the median of `ratios`, by resampling them."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ratios), size=(BOOTSTRAP_RESAMPLES, len(ratios)))
    medians = np.median(ratios[picks], axis=1)
    tail = (1 - CONFIDENCE) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


def ratio_with_ci(rates: np.ndarray) -> tuple[float, float, float]:
    """Median of run 0's rate over run 1's across alternated rounds, and its bootstrap interval."""
    ratios = rates[:, 0] / rates[:, 1]
    low, high = bootstrap_ci(ratios)
    return float(np.median(ratios)), low, high


#: Student's t, 97.5% quantile, by degrees of freedom (2(k - 1) for k copies of each kernel).
_T_975 = {2: 4.303, 4: 2.776, 6: 2.447, 8: 2.306, 10: 2.228, 12: 2.179, 14: 2.145, 16: 2.120, 18: 2.101}


def placement_floor(log_a: np.ndarray, log_b: np.ndarray) -> float:
    """A 95% bound on the difference of two means of k placements, from the pooled spread of the
    copies' log median rates around their own kernel's mean: Student's t quantile times the standard
    error, not 2 (with 3 copies each the spread has 4 degrees of freedom, and 2 standard errors would
    call an A/A comparison different about 12% of the time, not 5%)."""
    k = len(log_a)
    df = 2 * (k - 1)
    if df not in _T_975:
        raise ValueError(f"placement_floor: {k} copies per kernel (2 to {max(_T_975) // 2 + 1} supported)")
    pooled = (np.sum((log_a - log_a.mean()) ** 2) + np.sum((log_b - log_b.mean()) ** 2)) / df
    return float(np.expm1(_T_975[df] * np.sqrt(pooled) * np.sqrt(2 / k)))
