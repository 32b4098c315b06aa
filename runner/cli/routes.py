"""`ukl routes CONFIG`: the convolution route study of a conv2d config, stored layer by layer, then the
route rule fitted on every layer study in the store (this target) and scored against the
hand-written rules."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from runner import files
from runner.cli import json_lines
from runner.config import experiment as config_mod
from runner.config.experiment import ConfigError, runnable_target
from runner.measure.environment import host_cpu_model
from runner.report.routes import route_table, rule_text, usable
from runner.store.results import Store
from runner.studies.route_rule import Layer, RuleReport, derive
from runner.studies.routes import KIND, LayerRoutes, run_routes


def command(args: argparse.Namespace) -> int:
    experiment = config_mod.load(args.config)
    if experiment.kind != KIND:
        raise ConfigError(f"{args.config}: experiment.kind {experiment.kind!r} is not for ukl routes "
                          f"(it studies {KIND} configs)")
    target = runnable_target(experiment.target)
    config_mod.check_for_target(experiment.strategies, target, f"{args.config}: ")
    for strategy in experiment.strategies:
        why = config_mod.why_not_here(strategy)
        if why:
            raise ConfigError(f"{args.config}: {strategy.name}: {why}")
    if args.json:
        json_lines.emit(json_lines.context("routes", target))
    failed = False
    with Store(args.db) as store:
        run_id = store.start_run("routes", target, str(experiment.path), experiment.name)
        for layer in run_routes(experiment.settings, experiment.strategies, target, experiment.timing,
                                experiment.name):
            for record in layer.records:
                store.add(run_id, record, target, experiment.name)
                failed |= record.status not in ("ok", "disturbed")
            store.add_route_study(run_id, experiment.name, target, layer.to_json())
            if args.json:
                json_lines.emit(json_lines.line("layer", layer.to_json()))
            elif args.progress or sys.stdout.isatty():
                tqdm.write(layer_line(layer))
        threads = dict(experiment.settings.how)["threads"]
        studies = usable(store.route_studies(target.name), host_cpu_model(), threads)
    report = derive([Layer.from_study(s) for s in studies]) if studies else None
    folder = args.rule_dir or Path("results") / f"{experiment.name}-route-rule"
    if report is not None:
        files.write(folder / "conv_route.py", report.rule.python())
        files.write(folder / "conv_route.c", report.rule.c())
    if args.json:
        if report is not None:
            json_lines.emit(json_lines.line("rule", rule_json(report)))
        return 1 if failed else 0
    print(route_table(studies))
    if report is not None:
        print(rule_text(report))
        print(f"predicates: {folder / 'conv_route.py'}, {folder / 'conv_route.c'}")
    print(f"results: {args.db}")
    return 1 if failed else 0


def layer_line(layer: LayerRoutes) -> str:
    if layer.winner is None:
        return f"{layer.layer}: no route verified"
    margin = "" if layer.margin is None else \
        f" by {layer.margin[0]:.3f} [{layer.margin[1]:.3f}, {layer.margin[2]:.3f}]"
    figures = ", ".join(f"{name} {r['gflops']:.1f}" for name, r in layer.routes.items())
    ort = ", ".join(f"{name} {o['gflops']:.1f}" for name, o in layer.ort.items())
    verdict = " (disturbed: above the peak)" if layer.disturbed else "" if layer.clear else " (within the noise)"
    return f"{layer.layer}: {figures}; {ort or 'no ONNX Runtime figure'} GFLOP/s; winner {layer.winner}{margin}{verdict}"


def rule_json(report: RuleReport) -> dict[str, Any]:
    return {"rule": report.rule.text(), "python": report.rule.python(), "c": report.rule.c(),
            "scoring": report.scoring, "regret": report.regret, "choices": report.choices}
