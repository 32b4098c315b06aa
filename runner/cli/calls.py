"""`ukl calls CONFIG`: where one call of each small GEMM of a small_gemm config goes, in ns."""
from __future__ import annotations

import argparse

from tabulate import tabulate

from runner.cli import json_lines
from runner.config import experiment as config_mod
from runner.config.experiment import ConfigError, runnable_target
from runner.kinds.small_gemm import SMALL_GEMM_KIND
from runner.studies.calls import CallCosts, Figure, call_costs


def command(args: argparse.Namespace) -> int:
    experiment = config_mod.load(args.config)
    if experiment.kind != SMALL_GEMM_KIND.name:
        raise ConfigError(f"{args.config}: experiment.kind {experiment.kind!r} is not for ukl calls "
                          f"(it decomposes {SMALL_GEMM_KIND.name} calls)")
    target = runnable_target(experiment.target)
    if not target.runs_here:
        raise ConfigError(f"{args.config}: target {target.name} does not run here: calls are timed natively")
    config_mod.check_for_target(experiment.strategies, target, f"{args.config}: ")
    if args.json:
        json_lines.emit(json_lines.context("calls", target))
    for strategy in experiment.strategies:
        for problem in experiment.problems_of(strategy):
            costs = call_costs(strategy, problem, target, args.rounds, args.min_sample_seconds)
            if args.json:
                json_lines.emit(json_lines.line("calls", costs.to_json()))
            else:
                print(costs_table(costs), flush=True)
    return 0


def _cell(f: Figure) -> list[str]:
    return [f.name, f"{f.ns:.2f}", f"[{f.low:.2f}, {f.high:.2f}]"]


def costs_table(costs: CallCosts) -> str:
    rows = [["part", *_cell(f)] for f in costs.parts]
    rows += [["once", "first compile: IR, LLVM, load (a cache miss)", f"{costs.first_compile_ms:.1f} ms", ""]]
    rows += [["total", *_cell(f)] for f in costs.totals]
    rows += [["sum check", *_cell(f)] for f in costs.residuals]
    rows += [["baseline", f"{f.name}: {how}", f"{f.ns:.2f}", f"[{f.low:.2f}, {f.high:.2f}]"]
             for f, how in costs.baselines]
    return f"{costs.label} ({costs.rounds} alternated rounds)\n" + tabulate(
        rows, headers=["", "what", "ns per call", "95% CI"], disable_numparse=True, colalign=("left", "left", "right",
                                                                                              "left")) + "\n"
