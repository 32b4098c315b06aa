"""Optuna's own visualisations of stored results: optimisation history, parameter importances and
parallel coordinates, drawn by Optuna from an in-memory study rebuilt from the store.

Each verified result becomes a completed trial: its knobs that vary across the results are the
parameters (categorical), its GFLOP/s the value, in the order the results were measured. Nothing
is re-run: the figures are Optuna's reading of what the store already holds.
"""
from __future__ import annotations

import warnings
from typing import Callable

import optuna
from matplotlib import pyplot
from optuna.distributions import CategoricalDistribution
from optuna.visualization import matplotlib as optuna_matplotlib

#: Fewer verified results than this say nothing an importance or history plot could show.
MIN_TRIALS = 8


def study_from(ok: list[dict]) -> optuna.Study | None:
    """An Optuna study of the verified results (rows with `knobs`, `gflops`, `id`), or None when too few
    results or no knob varies."""
    if len(ok) < MIN_TRIALS:
        return None
    varying = sorted(k for k in ok[0]["knobs"] if len({str(r["knobs"][k]) for r in ok}) > 1)
    if not varying:
        return None
    distributions = {k: CategoricalDistribution(sorted({str(r["knobs"][k]) for r in ok})) for k in varying}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials([optuna.trial.create_trial(params={k: str(r["knobs"][k]) for k in varying},
                                                distributions=distributions, value=r["gflops"])
                      for r in sorted(ok, key=lambda r: r["id"])])
    return study


def optuna_figures(ok: list[dict]) -> list[tuple[str, str, str, object]]:
    """(file, title, caption, matplotlib figure) for each of Optuna's plots of the results."""
    study = study_from(ok)
    if study is None:
        return []
    plots: list[tuple[str, str, str, Callable]] = [
        ("optuna-history.png", "Optimisation history (Optuna)",
         "Each verified result in the order it was measured (GFLOP/s), with the best so far.",
         optuna_matplotlib.plot_optimization_history),
        ("optuna-importances.png", "Knob importances (Optuna, fANOVA)",
         "How much of the variance of GFLOP/s each knob explains, across all results (not a controlled "
         "comparison: see the paired effects).", optuna_matplotlib.plot_param_importances),
        ("optuna-parallel.png", "Parallel coordinates (Optuna)",
         "Every result as a line through its knob values, coloured by GFLOP/s.",
         optuna_matplotlib.plot_parallel_coordinate),
    ]
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        for file, title, caption, draw in plots:
            axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figures.append((file, title, caption, figure))
    return figures


def close(figure: object) -> None:
    pyplot.close(figure)
