"""`ukl`: the command line. Bad input -> one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from kernels_mlir.spec import DTYPES, SpecError
from pipelines.targets import TARGETS, Target, UnknownTarget, get_target, host_target, target_names
from transforms.errors import StrategyError
from transforms.instructions import INSTRUCTIONS
from transforms.steps import load_plugins
from transforms.strategy import Strategy

from runner.cli import json_lines
from runner.cli.asm import inspect, select
from runner.cli.mca import predict_candidates
from runner.cli.calls import command as calls_command
from runner.cli.routes import command as routes_command
from runner.cli.output import markdown_summary, mca_header, mca_table, noise_line, peak_line, progress_line, rate_header
from runner.config import experiment as config_mod
from runner.config.experiment import ConfigError, runnable_target
from runner import files
from runner.kinds import kind_named, kind_of
from runner.kinds.microkernel import MICROKERNEL
from runner.measure import reproducer
from runner.measure.baselines import BaselineUnavailable
from pipelines.model import NoModel, blocking, register_tile
from runner.measure import datapath_cache
from runner.measure.characterize import characterize, with_measured_datapath
from runner.measure.lifecycle import Candidate, build_or_record, check
from runner.measure.peak import measure_peak
from runner.measure.record import Record, rank
from runner.measure.timing import (MAX_SAMPLES, MIN_ROUNDS, MIN_SAMPLE_SECONDS, SAMPLES, TimingPolicy,
                                   check_count, check_sample_seconds, check_seconds)
from runner.report.display import terminal
from runner.report.report import build_report, side_by_side_rows
from runner.report.routes import route_table, rule_text
from runner.search.space import MAX_BUDGET, MAX_SWEEP_SECONDS, METHODS, max_jobs
from runner.search.shared import DEFAULT_HEARTBEAT, SharedSweep
from runner.search.sweep import GIVE_UP_AFTER, Sweep, summary_line
from runner.store.database import RECONNECT_SECONDS, Database, database_arg
from runner.store.results import DEFAULT_DB, FINAL, Store, StoreError
from runner.studies.compare import COPIES, Side, compare, pairs
from runner.studies.crossover import boundary_json, find_boundary, plot as crossover_plot, point_json
from runner.studies.crossover_run import run_crossover
from runner.studies.run import run_experiment

EXIT_BAD_INPUT = 2
#: Every command's --db unless given: the SQLite file under results/.
DEFAULT_DATABASE = Database(str(DEFAULT_DB))


def _load_kind(path: Path, command: str) -> config_mod.Experiment:
    """The config, if `command` runs its kind (crossover studies for `crossover`, problem kinds for the
    others); else one line pointing at the command that does."""
    experiment = config_mod.load(path)
    if (experiment.kind == config_mod.CROSSOVER) != (command == "crossover"):
        other = "ukl crossover" if experiment.kind == config_mod.CROSSOVER else "ukl run"
        raise ConfigError(f"{path}: experiment.kind {experiment.kind!r} is not for ukl {command} (use {other})")
    return experiment


def _cmd_run(args: argparse.Namespace) -> int:
    experiment = _load_kind(args.config, "run")
    target = runnable_target(experiment.target)
    records = []
    if not args.json:
        print(f"target {target.label}; each kernel is timed in alternation with the peak of its own instruction "
              "(FMA or dot product) at its own width", flush=True)
    if args.json:
        json_lines.emit(json_lines.context("run", target))
    with Store(args.db) as store:
        for record in run_experiment(experiment, store):
            records.append(record)
            if args.json:
                json_lines.emit(json_lines.result(record.to_json()))
            elif record.status == "skipped" or _progress(args):
                tqdm.write(progress_line(record))
    if not args.json:
        print(experiment.problem_kind.table(records))
        noise = noise_line(records)
        if noise:
            print(noise)
        for r in records:
            if "reproduce" in r.extra:
                print(f"{r.status} {r.strategy.name}: reproduce with `{r.extra['reproduce']}`")
        print(f"results: {args.db}")
    return 0 if all(r.status in ("ok", "skipped") for r in records) else 1


def _progress(args: argparse.Namespace) -> bool:
    """A line per finished candidate: on a terminal, or when asked (--progress)."""
    return args.progress or sys.stdout.isatty()


def _cmd_peak(args: argparse.Namespace) -> int:
    target = runnable_target(args.target)
    if args.characterize:
        return _characterize(target, args)
    policy = TimingPolicy(args.min_sample_seconds, args.samples)
    try:
        bits = target.width(args.vector_bits)
    except StrategyError as exc:
        raise ConfigError(f"--{exc}") from None
    inst = args.instruction
    dtype = args.dtype if inst is None else INSTRUCTIONS[inst].dtype
    if inst is not None:
        lacking = target.lacks(inst)
        if lacking:
            raise ConfigError(f"--instruction: {inst} needs {', '.join(lacking)}, which {target.label} lacks")
        try:
            INSTRUCTIONS[inst].check_width(bits)
        except StrategyError as exc:
            raise ConfigError(f"--{exc}") from None
    m = measure_peak(target, dtype, policy, bits=bits, instruction=inst)
    if inst is None:  # a host the table lacks: its theoretical figure on the datapath measured here
        target = with_measured_datapath(target)
    theory = target.peak_flops_per_cycle(dtype, bits, inst)
    unit = "op" if DTYPES[dtype].unit == "op" else "flop"
    if args.json:
        json_lines.emit(json_lines.context("peak", target))
        json_lines.emit(json_lines.line("peak", {
            "target": target.name, "cpu": target.cpu, "row": target.row, "dtype": dtype,
            "instruction": inst or "fma", "vector_bits": bits, "lanes": target.lanes(dtype, bits),
            "accumulators": target.peak_accumulators, "theoretical_flops_per_cycle": theory,
            "gflops": m.median, "gflops_min": m.minimum, "gflops_max": m.maximum, "cv": m.cv,
            "samples": list(m.gflops_samples)}))
    else:
        print(f"{target.label}: " + peak_line(dtype, bits, target.lanes(dtype, bits), target.peak_accumulators, m,
                                              inst))
        path = target.fma if inst is None else dict(target.dots).get(inst)
        print(f"theoretical: {'unknown' if theory is None else f'{theory:g} {unit}/cycle'}"
              + ("" if path is None else f" ({path.pipes} pipes x {path.bits_per_pipe} bits)"))
    return 0


def _characterize(target: Target, args: argparse.Namespace) -> int:
    if not target.runs_here:
        raise ConfigError(f"--target: {target.label} does not run here: its datapath is measured natively")
    found = characterize(target, rounds=args.samples, min_sample_seconds=args.min_sample_seconds)
    row = target.row if target.name == "host" else target.name
    said = found.disagreements(target) if target.fma is not None else []
    verdict = (f"no table row for {target.cpu}: the measured datapath stands for it" if target.fma is None else
               f"agrees with the table's {row} row" if not said else
               f"disagrees with the table's {row} row: " + "; ".join(said))
    if args.json:
        json_lines.emit(json_lines.context("peak", target))
        json_lines.emit(json_lines.line("characterization", {**found.to_json(), "row": row, "verdict": verdict}))
        return 0
    print(f"{target.label}: clock {found.clock_ghz:.2f} GHz (one-cycle dependent adds, alternated with every FMA loop)")
    print(tabulate([[w.dtype, w.bits, f"{w.latency_cycles:.2f}", f"{w.ops_per_cycle:.2f}", w.chains]
                    for w in found.widths + found.dots],
                   headers=["dtype or instruction", "bits", "latency (cycles)", "issued per cycle", "chains"],
                   disable_numparse=True))
    for dtype in dict.fromkeys(w.dtype for w in found.widths):
        path = found.datapath(dtype)
        print(f"{dtype}: {path.pipes} pipes x {path.bits_per_pipe} bits, latency {path.latency}: at least "
              f"{path.pipes * path.latency} independent accumulators keep them busy")
    print("caches: " + (", ".join(f"{name} {size // 1024} KiB" for name, size in found.caches) or "not reported"))
    print(verdict)
    measured = target if target.fma is not None else dataclasses.replace(target, fma=found.datapath("f32"))
    try:  # the model on the table's row, or on the measured datapath where the table has none
        tile = register_tile(measured, "f32")
        b = blocking(measured, "f32", tile.mr, tile.nr)
        print(f"model (f32{'' if target.fma is not None else ', measured datapath'}): {tile.why}; {b.why}")
    except NoModel as exc:
        print(f"model: {exc}")
    return 0


def _chosen(args: argparse.Namespace) -> tuple[Target, list[Strategy], config_mod.Experiment]:
    """The target (--target, else the config's) and the --strategy selection, checked against each other,
    with the config they come from."""
    experiment = config_mod.load(args.config)
    target = get_target_or_fail(args.target or experiment.target)
    strategies = select(experiment.strategies, args.strategy)
    config_mod.check_for_target(strategies, target, "--target: ")
    return target, strategies, experiment


def _cmd_asm(args: argparse.Namespace) -> int:
    target, strategies, _ = _chosen(args)
    statuses = []
    if args.json:
        json_lines.emit(json_lines.context("asm", target))
    for record in inspect(strategies, target, args.out):
        statuses.append(record["status"])
        if args.json:
            json_lines.emit(json_lines.line("inspection", record))
            continue
        if record["status"] != "ok":
            print(terminal(f"{record['name']} on {target.name}: {record['status']}: {record['error']}"))
            continue
        mix = ", ".join(f"{k} {v}" for k, v in sorted(record["mix"].items()))
        distances = record["load_use_distances"]
        print(f"{record['name']} on {target.name} ({record['cpu']}): hot loop {record['instructions']} instructions; "
              f"vector registers {record['vector_registers_used']}/{record['vector_registers_available']}; "
              f"spills {record['spill_stores']} stores / {record['spill_reloads']} reloads; {mix}; "
              f"load-to-use distance min {distances['min']}, median {distances['median']}, max {distances['max']}"
              + (f"; ZA tiles {record['za_tiles_used']}, ZA moves in the loop {record['za_moves']}, streaming-mode "
                 f"switches per call {record['streaming_switches']} (SMSTART/SMSTOP outside the loop)"
                 if record["za_tiles_used"] else "")
              + (f"; stages in {record['stages']}" if record["stages"] else ""))
        print("\n".join(f"    {line}" for line in record["loop"]))
    return 0 if all(status == "ok" for status in statuses) else 1


def _cmd_mca(args: argparse.Namespace) -> int:
    target, strategies, experiment = _chosen(args)
    target = with_measured_datapath(target)  # a host the table lacks: predictions against its measured datapath
    candidates = [Candidate(s, problem, target) for s in strategies for problem in experiment.problems_of(s)]
    records = []
    if args.json:
        json_lines.emit(json_lines.context("mca", target))
    store = None if args.db is None else Store(args.db)  # predictions kept only when asked
    run_id = None if store is None else store.start_run("mca", target, str(args.config))
    try:
        for record in predict_candidates(candidates):
            records.append(record)
            if store is not None and record["status"] == "ok":
                store.add_prediction(run_id, record)
            if args.json:
                json_lines.emit(json_lines.line("prediction", record))
    finally:
        if store is not None:
            store.close()
    if not args.json:
        print(mca_header(target, records))
        print(mca_table(records))
    return 0 if all(r["status"] == "ok" for r in records) else 1


def _cmd_sweep(args: argparse.Namespace) -> int:
    experiment = _load_kind(args.config, "sweep")
    overrides = {k: v for k, v in (("method", args.method), ("budget", args.budget), ("time_seconds", args.time),
                                   ("jobs", args.jobs)) if v is not None}
    try:
        settings = dataclasses.replace(experiment.sweep, **overrides)
        if args.study is None and args.db.is_url:
            raise ConfigError("--db: a server takes shared sweeps: name the study with --study NAME")
        if args.study is not None and not args.db.is_url:
            raise ConfigError(f"--study: shared sweeps need a database server for --db (a postgresql:// URL), "
                              f"not the file {args.db}")
        with Store(args.db, patience=args.reconnect,
                   on_wait=lambda line: print(f"ukl: {line}", file=sys.stderr, flush=True)) as store:
            target = runnable_target(experiment.target)
            sweep = Sweep(experiment, target, store, settings, args.resume) if args.study is None else \
                SharedSweep(experiment, target, store, settings, args.resume, args.study, args.heartbeat)
            records = []
            if args.json:
                json_lines.emit(json_lines.context("sweep", sweep.target))
            for record in sweep.run():
                records.append(record)
                if args.json:
                    json_lines.emit(json_lines.result(record.to_json()))
                elif _progress(args):
                    tqdm.write(progress_line(record))
    except StrategyError as exc:
        raise ConfigError(f"{args.config}: {exc}") from None
    source = sweep.source
    if not args.json:
        finals = [r for r in records if r.extra["phase"] == FINAL] or records
        best = sorted(finals, key=lambda r: rank(r.to_json()))[:args.top]
        print(experiment.problem_kind.table(best))
    summary = summary_line(records, source.rejected, len(source.resumed))
    if source.gave_up:
        summary += f"; stopped after {GIVE_UP_AFTER} points in a row were invalid or already measured"
    if args.study is not None:
        summary += f"; study {args.study}: {sweep.study_summary()}"
    print(f"sweep: {summary}; results: {args.db}", file=sys.stderr if args.json else sys.stdout)
    if args.markdown is not None:
        files.write(args.markdown, markdown_summary(f"Sweep {experiment.name} on {sweep.target.cpu}", records, summary))
    return 1 if any(r.status in ("wrong_answer", "crash") for r in records) else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.config is not None:
        experiment = config_mod.load(args.config)
        target = runnable_target(args.target or experiment.target)
        if experiment.kind in (MICROKERNEL.name, config_mod.CROSSOVER):
            sides = [tuple(Side.microkernel(select(experiment.strategies, name)[0]) for name in (args.a, args.b))]
        else:
            sides = pairs(experiment.strategies, experiment.problems_of, args.a, args.b)
    else:
        if not args.db.exists():
            raise ConfigError(f"--db: {args.db}: no such results database (or pass --config)")
        with Store(args.db, readonly=True) as store:
            try:
                a, b = (Strategy.from_dict(store.strategy(h), f"stored strategy {h}") for h in (args.a, args.b))
            except LookupError as exc:
                raise ConfigError(exc.args[0]) from None
            except StrategyError as exc:  # a stored row is distrusted like a config
                raise ConfigError(f"{args.db}: {exc}") from None
        target = runnable_target(args.target or "host")
        sides = [(Side.microkernel(a), Side.microkernel(b))]
    strategies = tuple(dict.fromkeys(side.strategy for pair in sides for side in pair))
    config_mod.check_for_target(strategies, target, "--target: ")
    for strategy in strategies:
        why = config_mod.why_not_here(strategy)
        if why:
            raise ConfigError(f"{strategy.name}: {why}")
    if args.json:
        json_lines.emit(json_lines.context("compare", target))
    for a, b in sides:
        what = "" if len(sides) == 1 else f" on {a.problem.workload()}"
        bar = tqdm(total=args.rounds, desc=f"{a.name} vs {b.name}{what}", unit="round", leave=False,
                   disable=args.json or not _progress(args))

        def on_round(ratio: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"A/B {ratio:.3f} so far")
        result = compare(a, b, target, args.rounds, args.min_sample_seconds, on_round)
        bar.close()
        if args.json:
            json_lines.emit(json_lines.line("comparison", result.to_json()))
            continue
        if result.ns_a is not None:
            print(f"{kind_of(a.problem).label(a.strategy, a.problem)}: {result.ns_a:.1f} ns per call, "
                  f"{kind_of(b.problem).label(b.strategy, b.problem)}: {result.ns_b:.1f} ns per call "
                  f"(medians of {result.rounds} interleaved rounds of {COPIES} copies of each)")
        else:
            print(f"{result.a}: {result.gflops_a:.2f} GFLOP/s, {result.b}: {result.gflops_b:.2f} GFLOP/s "
                  f"(medians of {result.rounds} interleaved rounds of {COPIES} copies of each)")
        print(result.verdict, flush=True)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if not args.db.exists():
        raise ConfigError(f"--db: {args.db}: no such results database")
    if args.kind is not None:  # (plugin kinds are loaded before any command: _check_environment)
        try:
            kind_named(args.kind)
        except StrategyError as exc:
            raise ConfigError(f"--kind: {exc}") from None
    report = build_report(args.db, args.top, args.target, args.kind)
    if args.plots is not None:
        for plot in report.plots:
            files.write(args.plots / plot.file, plot.png)
    if args.html is not None:
        files.write(args.html, report.html())
    if args.json:
        json_lines.emit(json_lines.context("report", get_target(args.target) if args.target in TARGETS else None))
        for data in report.ranked_records(args.top):
            json_lines.emit(json_lines.result(data))
        for experiment, by_host in (report.best_per_host if len(report.hosts) > 1 else {}).items():
            for host, row in by_host.items():
                json_lines.emit(json_lines.line("best_per_host", {"experiment": experiment, "host": host,
                                                                  "name": row["name"], "gflops": row["gflops"],
                                                                  "fraction_of_peak": row["fraction_of_peak"]}))
        for group in report.route_groups:
            json_lines.emit(json_lines.line("route_study", group.to_json()))
        json_lines.emit(json_lines.line("summary", {"summary": report.summary(), "statuses": dict(report.statuses),
                                                    "rejections": report.rejections,
                                                    "plots": [p.title for p in report.plots]}))
    else:
        print(terminal(report.summary()))
        for section in report.sections:
            print(f"\n{section.kind}:")
            print(tabulate([[terminal(cell) for cell in row] for row in section.top],
                           headers=[terminal(h) for h in section.headers], disable_numparse=True))
            for title, headers, rows in section.summaries:
                print(f"\n{section.kind}, {title.lower()}:")
                print(tabulate(rows, headers=headers, disable_numparse=True))
        for group in report.route_groups:
            print(f"\n{terminal(group.title)}:")
            print(route_table(group.studies))
            print(rule_text(group.report))
        if len(report.hosts) > 1:
            headers, rows = side_by_side_rows(report.best_per_host)
            print("\nbest strategy per kind of host:")
            print(tabulate([[terminal(c) for c in row] for row in rows], headers=[terminal(h) for h in headers],
                           disable_numparse=True))
        written = [str(p) for p in (args.html, args.plots) if p is not None]
        if written:
            print(f"wrote {', '.join(written)} ({len(report.plots)} plots)")
    return 0


def _cmd_crossover(args: argparse.Namespace) -> int:
    experiment = _load_kind(args.config, "crossover")
    target = runnable_target(experiment.target)
    routes = experiment.crossover.routes
    ours = [r.strategy for r in routes if r.strategy is not None]  # every route runs here: none may lack a feature
    config_mod.check_for_target(ours, target, f"{args.config}: ")
    for strategy in ours:
        why = config_mod.why_not_here(strategy)
        if why:
            raise ConfigError(f"{args.config}: {strategy.name}: {why}")
    names = tuple(r.name for r in routes)
    points = []
    if args.json:
        json_lines.emit(json_lines.context("crossover", target))
    unit = rate_header([experiment.crossover.dtype])
    for point in run_crossover(experiment, target):
        points.append(point)
        if not args.json and _progress(args):
            figures = ", ".join(f"{n} {g:.1f}" for n, g in zip(names, point.gflops))
            winner = {"A": names[0], "B": names[1]}.get(point.winner, "within the noise")
            tqdm.write(f"{'x'.join(map(str, point.shape))}: {figures} {unit}; {names[0]}/{names[1]} {point.ratio:.3f} "
                       f"[{point.ci_low:.3f}, {point.ci_high:.3f}]: {winner}")
        if args.json:
            json_lines.emit(json_lines.line("crossover_point", point_json(point, names)))
    boundary = find_boundary(points, (names[0], names[1]))
    with Store(args.db) as store:  # so `ukl report` redraws it without measuring again
        store.add_crossover(store.start_run("crossover", target, str(experiment.path), experiment.name),
                            experiment.name, target, experiment.crossover.dtype, list(names),
                            [point_json(p, names) for p in points], boundary_json(boundary))
    plot_path = args.plot or Path("results") / f"{experiment.name}-crossover.png"
    files.write(plot_path, crossover_plot(points, boundary, names, f"{experiment.name}: {names[0]} vs {names[1]}",
                                          unit))
    if args.json:
        json_lines.emit(json_lines.line("boundary", {**boundary_json(boundary), "plot": str(plot_path)}))
        return 0
    rows = [["x".join(map(str, p.shape)), p.work, *(f"{g:.2f}" for g in p.gflops),
             f"{p.ratio:.3f} [{p.ci_low:.3f}, {p.ci_high:.3f}]", {"A": names[0], "B": names[1]}.get(p.winner, "tie"),
             names[int(np.argmax(p.gflops))]] for p in points]
    print(tabulate(rows, headers=["M x N x K", "work", *(f"{n} {unit}" for n in names),
                                  f"{names[0]}/{names[1]} [95% CI]", "winner", "fastest route"],
                   disable_numparse=True))
    print(f"boundary: {boundary.verdict}")
    print(f"plot: {plot_path}")
    return 0


def _cmd_repro(args: argparse.Namespace) -> int:
    """Replay a failed candidate from its reproducer folder: build it, then verify it where it can run."""
    try:
        candidate, was = reproducer.load(args.folder)
    except (StrategyError, SpecError, UnknownTarget) as exc:
        raise ConfigError(f"{args.folder}: {exc}") from None
    except ValueError as exc:  # (names the file)
        raise ConfigError(str(exc)) from None
    built = build_or_record(candidate)
    if isinstance(built, Record):
        status, detail = built.status, built.error
    else:
        result, how = check(built)
        status = "ok" if result is None or result.correct else "wrong_answer"
        detail = how if result is None or result.correct else result.message
    if args.json:
        json_lines.emit(json_lines.context("repro", candidate.target))
        json_lines.emit(json_lines.line("replay", {"status": status, "was": was, "error": detail}))
    else:
        print(terminal(f"{candidate.strategy.name} on {candidate.target.name}: {status} ({detail}); "
                       f"recorded as {was}"))  # every part comes from files a user may have been handed
    return 0 if status == "ok" else 1


def _check_environment() -> None:
    """The environment values every command may read ($UKL_HOST_ISA, $UKL_PLUGINS), checked before any
    command runs: the same one line from each of them."""
    try:
        host_target()
        load_plugins()
    except (UnknownTarget, StrategyError) as exc:
        raise ConfigError(str(exc)) from None


def get_target_or_fail(name: str):
    try:
        return get_target(name)
    except UnknownTarget as exc:
        raise ConfigError(f"--target: {exc}") from None


def _checked(parse, check):
    """An argparse type: `parse` the text, then `check` it (its ValueError is the one-line message)."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'number' if parse is float else 'whole number'}: {text!r}")
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    return convert


def _study_name(text: str) -> str:
    try:
        return config_mod.plain_name(text, "a study name")
    except StrategyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(low: int, high) -> object:
    return _checked(int, lambda v: check_count(v, low, high() if callable(high) else high, "value"))


_SAMPLE_SECONDS = _checked(float, lambda v: check_sample_seconds(v, "value"))
MAX_ROWS = 1_000_000


def _interrupted(signum: int, frame) -> None:
    """SIGTERM stops a command the way ^C does: workers killed, what was measured kept."""
    raise KeyboardInterrupt(signum)


class _Parser(argparse.ArgumentParser):
    """Bad command-line input is one line (no usage block) and exit status 2, like bad config input."""

    def error(self, message: str) -> None:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _add_db(parser: argparse.ArgumentParser, help: str = f"results database: a SQLite file (default {DEFAULT_DB}) "
            "or a postgresql:// URL", default: Database | None = DEFAULT_DATABASE) -> None:
    parser.add_argument("--db", type=database_arg, default=default, help=help)


def _add_json(parser: argparse.ArgumentParser, help: str = "JSON lines on stdout (a context line first)") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def _add_progress(parser: argparse.ArgumentParser,
                  help: str = "a line per finished candidate even when stdout is not a terminal") -> None:
    parser.add_argument("--progress", action="store_true", help=help)


def _add_target(parser: argparse.ArgumentParser,
                help: str = "override the config's target (any name from the target table)") -> None:
    parser.add_argument("--target", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ukl", description="GEMM micro-kernel code-generation experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="compile, verify and time every strategy of a config")
    run.add_argument("config", type=Path)
    _add_db(run)
    _add_json(run, "one JSON object per strategy on stdout")
    _add_progress(run)
    run.set_defaults(func=_cmd_run)

    asm = sub.add_parser("asm", help="dump every stage and annotate the micro-kernel's hot loop")
    asm.add_argument("config", type=Path)
    asm.add_argument("--strategy", help="only this strategy (default: all)")
    _add_target(asm)
    asm.add_argument("--out", type=files.output_dir, help="write every stage (MLIR, LLVM IR, assembly) under DIR/<strategy>/")
    _add_json(asm)
    asm.set_defaults(func=_cmd_asm)

    mca = sub.add_parser("mca", help="predict each strategy's hot-loop throughput with llvm-mca (any target)")
    mca.add_argument("config", type=Path)
    mca.add_argument("--strategy", help="only this strategy (default: all)")
    _add_target(mca)
    _add_json(mca, "one JSON object per strategy on stdout")
    _add_db(mca, "also store the predictions here (the report draws them beside the measured fractions)",
            default=None)
    mca.set_defaults(func=_cmd_mca)

    sweep = sub.add_parser("sweep", help="search a space of strategies: screen every candidate, re-measure the leaders")
    sweep.add_argument("config", type=Path)
    sweep.add_argument("--method", choices=METHODS, help="override [sweep] method (default grid)")
    limit = sweep.add_mutually_exclusive_group()
    limit.add_argument("--budget", type=_count(1, MAX_BUDGET), help="at most N candidates")
    limit.add_argument("--time", type=_checked(float, lambda v: check_seconds(v, MAX_SWEEP_SECONDS, "value")),
                       metavar="S", help="stop starting new candidates after S seconds")
    sweep.add_argument("--jobs", type=_count(1, max_jobs), help="compile workers (default: one per CPU; "
                       "at most four per CPU)")
    sweep.add_argument("--resume", action="store_true",
                       help="skip candidates already measured for this target on this host")
    _add_db(sweep)
    sweep.add_argument("--study", type=_study_name, metavar="NAME",
                       help="join the shared sweep NAME on --db's server (started on any number of machines)")
    sweep.add_argument("--heartbeat", type=_count(1, 3600), default=DEFAULT_HEARTBEAT, metavar="S",
                       help=f"with --study: seconds between a claimed candidate's heartbeats; a worker silent "
                            f"for 3 of them is taken as dead and its candidate retried (default {DEFAULT_HEARTBEAT})")
    sweep.add_argument("--reconnect", type=_checked(float, lambda v: check_seconds(v, 86400, "value")),
                       default=RECONNECT_SECONDS, metavar="S",
                       help=f"with --study: how long a server that stopped answering is retried before the worker "
                            f"stops with one line (default {RECONNECT_SECONDS:g})")
    sweep.add_argument("--top", type=_count(1, MAX_ROWS), default=10, help="rows in the final table")
    sweep.add_argument("--markdown", type=files.output_file, metavar="FILE", help="also write a Markdown summary")
    _add_json(sweep, "one JSON object per candidate and phase on stdout")
    _add_progress(sweep)
    sweep.set_defaults(func=_cmd_sweep)

    cmp = sub.add_parser("compare", help="paired, interleaved A/B timing with a bootstrap confidence interval")
    cmp.add_argument("a", help="strategy name (with --config) or stored strategy hash prefix")
    cmp.add_argument("b")
    cmp.add_argument("--config", type=Path, help="take A and B by name from this config")
    _add_db(cmp, "else take them by hash from this database")
    _add_target(cmp, "default: the config's target, else host")
    cmp.add_argument("--rounds", type=_count(MIN_ROUNDS, 10_000), default=40,
                     help=f"alternated rounds (at least {MIN_ROUNDS}: fewer give no meaningful interval)")
    cmp.add_argument("--min-sample-seconds", type=_SAMPLE_SECONDS, default=0.01)
    _add_json(cmp)
    _add_progress(cmp, "a live bar (rounds, ETA, ratio so far) off a terminal too")
    cmp.set_defaults(func=_cmd_compare)

    rep = sub.add_parser("report", help="top strategies, failures and plots from a results database")
    _add_db(rep)
    rep.add_argument("--html", type=files.output_file, help="write a self-contained HTML report (plots embedded)")
    rep.add_argument("--plots", type=files.output_dir, metavar="DIR", help="write the plots as PNG files")
    _add_target(rep, "only results for this target")
    rep.add_argument("--top", type=_count(1, MAX_ROWS), default=10)
    rep.add_argument("--kind", help="only results of this problem kind (default: every kind the database holds, "
                     "each in its own table)")
    _add_json(rep)
    rep.set_defaults(func=_cmd_report)

    cross = sub.add_parser("crossover", help="where one route starts beating another over a grid of shapes")
    cross.add_argument("config", type=Path)
    cross.add_argument("--plot", type=files.output_file, help="PNG to write (default results/<name>-crossover.png)")
    _add_json(cross, "one JSON object per shape, then the boundary")
    _add_progress(cross, "a line per measured shape even when not on a terminal")
    _add_db(cross, "results database the crossover is stored in")
    cross.set_defaults(func=_cmd_crossover)

    routes = sub.add_parser("routes", help="which convolution route wins on each layer of a conv2d config, "
                            "against ONNX Runtime, and the route rule fitted on the store's layers")
    routes.add_argument("config", type=Path)
    routes.add_argument("--rule-dir", type=files.output_dir, metavar="DIR",
                        help="where the rule's C and Python predicates go (default results/<name>-route-rule)")
    _add_json(routes, "one JSON object per layer, then the rule")
    _add_progress(routes, "a line per measured layer even when not on a terminal")
    _add_db(routes, "results database the study is stored in (the rule is fitted on every study there)")
    routes.set_defaults(func=routes_command)

    calls = sub.add_parser("calls", help="where one call of each small GEMM of a small_gemm config goes (native "
                           "call, Python's call, cache lookup, first compile, arithmetic), beside the libraries, "
                           "in ns per call")
    calls.add_argument("config", type=Path)
    calls.add_argument("--rounds", type=_count(MIN_ROUNDS, 10_000), default=30,
                       help=f"alternated rounds (at least {MIN_ROUNDS})")
    calls.add_argument("--min-sample-seconds", type=_SAMPLE_SECONDS, default=0.005)
    _add_json(calls, "one JSON object per problem")
    calls.set_defaults(func=calls_command)

    repro = sub.add_parser("repro", help="replay a failed candidate from its reproducer folder (results/repro/...)")
    repro.add_argument("folder", type=Path)
    _add_json(repro)
    repro.set_defaults(func=_cmd_repro)

    peak = sub.add_parser("peak", help="measure the FMA-throughput peak of this core")
    peak.add_argument("--target", default="host", choices=target_names(),
                      help="any target whose code runs here (the host has every feature it needs)")
    peak.add_argument("--dtype", default="f32", choices=sorted(d for d, t in DTYPES.items() if t.groups == (1,)),
                      help="element type of the FMAs (low-precision dtypes run on dot products: --instruction)")
    peak.add_argument("--vector-bits", type=int, help="vector width of the FMAs (default: the target's widest)")
    peak.add_argument("--instruction", choices=sorted(INSTRUCTIONS),
                      help="a dot-product instruction instead of FMAs (its dtype replaces --dtype)")
    peak.add_argument("--min-sample-seconds", type=_SAMPLE_SECONDS, default=MIN_SAMPLE_SECONDS)
    peak.add_argument("--samples", type=_count(SAMPLES, MAX_SAMPLES), default=SAMPLES)
    peak.add_argument("--characterize", action="store_true",
                      help="measure the datapath instead: per dtype and width, FMA latency (one dependent chain) and "
                      "throughput (independent chains) in cycles against a clock loop, the pipes, bits per pipe and "
                      "latency they imply, the cache sizes, and where the target table's row disagrees")
    _add_json(peak)
    peak.set_defaults(func=_cmd_peak)
    return parser


def main(argv: list[str] | None = None) -> int:
    # ^C and SIGTERM stop a command cleanly, even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    # Every Python child (sweep workers start as `python -c`) runs without the working directory on its
    # path: a folder there named like a module (multiprocessing/, runner/) is never imported.
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or bad command-line input (2): argparse has said it
        return int(exc.code or 0)
    try:
        _check_environment()
        database = getattr(args, "db", None)
        # A host the table lacks: its measured datapath is kept beside the results database (and only there).
        datapath_cache.use_directory(database.path.parent if isinstance(database, Database) and database.path
                                     else None)
        return args.func(args)
    except (ConfigError, StoreError, files.OutputError, BaselineUnavailable) as exc:
        print(f"ukl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; results are already in the database.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        print("ukl: interrupted (results measured so far are in the database)", file=sys.stderr)
        return 128 + (exc.args[0] if exc.args else signal.SIGINT)
