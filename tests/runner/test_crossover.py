"""The crossover finder on synthetic routes with a known crossover (end to end: test_gemm_experiment)."""
import math

import numpy as np

from runner.measure.stats import bootstrap_ci
from runner.studies.crossover import ShapePoint, find_boundary


def synthetic(work: int, rng) -> ShapePoint:
    """Route A: 50 units of fixed cost + 1 per unit of work; route B: 2 per unit. A wins above 50."""
    t_a = (50 + work) * rng.normal(1, 0.01, 30)
    t_b = 2 * work * rng.normal(1, 0.01, 30)
    ratios = t_b / t_a  # speed of A / speed of B
    low, high = bootstrap_ci(ratios)
    return ShapePoint((work, 1, 1), (1 / np.median(t_a), 1 / np.median(t_b)), float(np.median(ratios)), low, high)


def test_finder_brackets_a_known_crossover():
    rng = np.random.default_rng(0)
    points = [synthetic(w, rng) for w in (4, 8, 16, 24, 32, 40, 48, 56, 64, 96, 128, 256, 512)]
    boundary = find_boundary(points, ("packed", "plain"))
    assert boundary.low <= 50 <= boundary.high and boundary.high <= 64
    assert math.isclose(boundary.estimate, 50, rel_tol=0.15)
    assert boundary.verdict.startswith("packed is faster from M*N*K = ")


def test_finder_says_when_there_is_no_crossover():
    rng = np.random.default_rng(1)
    points = [synthetic(w, rng) for w in (100, 200, 400)]
    assert "no crossover" in find_boundary(points).verdict
    flat = [ShapePoint((w, 1, 1), (1.0, 1.0), 1.0, 0.999, 1.001) for w in (1, 2, 3)]
    assert find_boundary(flat).verdict.startswith("no difference beyond the noise floor")


def test_the_plot_uses_the_one_dimension_that_varies():
    from runner.studies.crossover import ShapePoint, varied_dimension
    points = [ShapePoint((m, 768, 768), (1.0, 2.0), 0.5, 0.4, 0.6) for m in (1, 2, 4)]
    assert varied_dimension(points) == ("M", [1, 2, 4])
    mixed = points + [ShapePoint((8, 16, 768), (1.0, 2.0), 0.5, 0.4, 0.6)]
    assert varied_dimension(mixed)[0] == "M x N x K"
