"""`ukl routes`: which convolution route wins on which layer, on this core, and by how much.

For each layer of a conv2d config, every route it can take (for every strategy) is built and
verified, then all of them, ONNX Runtime's configurations and the FMA peak are timed in one
rotating alternation. Per layer: each route's GFLOP/s and fraction of peak, its ratio to the
layer's best route and to ONNX Runtime's better configuration with 95% intervals (over the
alternated rounds), its extra memory, and the winner, called only when its interval against the
runner-up clears the noise floor. Failed routes keep their status and are left out of the timing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_mlir.conv import ConvSpec
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.config.fields import fits_in_memory
from runner.kinds import launch
from runner.kinds.conv2d import CONV2D, ConvSettings
from runner.measure.lifecycle import Built, Candidate, build_or_record
from runner.measure.parallel import measurement_cpus
from runner.measure.peak import alongside_peak, parallel_peak, peak_kernel
from runner.measure.record import Record
from runner.measure.stats import MIN_EFFECT, ratio_with_ci
from runner.measure.timing import TimingPolicy
from runner.measure.trust import DISTURBED, above_peak, fraction, until_plausible
from runner.measure.verify import verify


@dataclass
class LayerRoutes:
    """One layer's study: its records (one per route, measured or failed) and what they add up to."""

    layer: str
    network: str
    spec: ConvSpec
    records: list[Record]
    #: Per measured route: name -> {gflops, fraction, extra_bytes, vs_best [r, lo, hi], vs_ort [r, lo, hi]}.
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ONNX Runtime's configurations: name -> {gflops, configuration}.
    ort: dict[str, dict[str, Any]] = field(default_factory=dict)
    winner: str | None = None
    #: The winner over the runner-up [ratio, low, high], and whether it clears the noise floor.
    margin: list[float] | None = None
    clear: bool = False
    #: A route stayed above the peak timed beside it, measured again: its fraction of peak is not to be trusted.
    disturbed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "network": self.network, "shape": self.spec.shape.workload(),
                "threads": self.spec.threads,
                "routes": self.routes, "ort": self.ort, "winner": self.winner, "margin": self.margin,
                "clear": self.clear, "disturbed": self.disturbed}


#: The kind a route study is about.
KIND = CONV2D.name


def route_name(strategy: Strategy, spec: ConvSpec, strategies: int) -> str:
    """The route, and with several strategies the strategy too."""
    return spec.route if strategies == 1 else f"{spec.route}/{strategy.name}"


def run_routes(settings: ConvSettings, strategies: tuple[Strategy, ...], target: Target, policy: TimingPolicy,
               network: str) -> Iterator[LayerRoutes]:
    """Layer by layer; `network` names the layers that do not name theirs (the experiment's name)."""
    for layer, network, specs in settings.by_layer(strategies, network):
        fits_in_memory(sum(spec.bytes_needed for _, spec in specs), f"conv2d {layer}: its routes together")
        yield _layer(layer, network, specs, len(strategies), target, policy)


def _layer(layer: str, network: str, specs: list[tuple[Strategy, ConvSpec]], strategies: int, target: Target,
           policy: TimingPolicy) -> LayerRoutes:
    records, built, names = [], [], []
    for strategy, spec in specs:
        candidate = Candidate(strategy, spec, target)
        outcome = build_or_record(candidate)
        if isinstance(outcome, Built):
            check = verify(outcome.code, spec)
            if check.correct:
                built.append((outcome, check))
                names.append(route_name(strategy, spec, strategies))
                continue
            outcome = candidate.record("wrong_answer", compile_seconds=outcome.seconds, verification=check,
                                       error=check.message)
        records.append(outcome)
    first = specs[0][1]
    result = LayerRoutes(layer, network, first, records)
    if not built:
        return result
    threads = first.threads
    ops = [b.candidate.problem.operands(seed=1) for b, _ in built]
    runs = [launch(b.code, b.candidate.problem, o, bench=True) for (b, _), o in zip(built, ops)]
    baselines = CONV2D.baselines(first, ops[0])
    bits = max(b.vector_bits for b, _ in built)
    peak = parallel_peak([peak_kernel(target, first.dtype, bits) for _ in range(threads)])
    cpus = None if threads == 1 else set(measurement_cpus(threads))

    def once():
        with threadpool_limits(limits=threads, user_api="blas"):
            return alongside_peak([*runs, *(b.run for b in baselines)], [first.flops] * (len(runs) + len(baselines)),
                                  peak, policy, cpus)
    # A route above the peak timed beside it: the measurement is at fault (the lifecycle's rule), measured again.
    (measured, peak_m), result.disturbed = until_plausible(
        once, lambda found: max(fraction(m.median, found[1].gflops_samples) or 0 for m in found[0][:len(runs)]))
    ours, theirs = measured[:len(runs)], measured[len(runs):]
    rates = np.column_stack([m.gflops_samples for m in measured])
    best = int(np.argmax([m.median for m in ours]))
    ort_best = len(runs) + int(np.argmax([m.median for m in theirs])) if theirs else None
    result.ort = {b.name: {"gflops": m.median, "configuration": b.configuration} for b, m in zip(baselines, theirs)}
    for i, ((b, check), m, name) in enumerate(zip(built, ours, names)):
        share = fraction(m.median, peak_m.gflops_samples)
        vs_best = list(ratio_with_ci(rates[:, [i, best]]))
        vs_ort = list(ratio_with_ci(rates[:, [i, ort_best]])) if ort_best is not None else None
        result.routes[name] = {"gflops": m.median, "fraction": share, "extra_bytes": b.candidate.problem.extra_bytes,
                               "vs_best": vs_best, "vs_ort": vs_ort}
        baseline_figures = [{"name": base.name, "configuration": base.configuration, "gflops": t.median,
                             "gflops_min": t.minimum, "gflops_max": t.maximum,
                             **dict(zip(("ratio", "ratio_ci"), _split(ratio_with_ci(rates[:, [i, len(runs) + j]])))),
                             "call_overhead_us": None} for j, (base, t) in enumerate(zip(baselines, theirs))]
        status = "disturbed" if above_peak(share) else "ok"
        records.append(b.candidate.record(status, compile_seconds=b.seconds, verification=check, measurement=m,
                                          peak=peak_m, vector_bits=b.vector_bits,
                                          error=DISTURBED if status == "disturbed" else "",
                                          extra={"baselines": baseline_figures, "layer": layer, "network": network}))
    result.winner = names[best]
    if len(ours) > 1:
        runner_up = max((i for i in range(len(ours)) if i != best), key=lambda i: ours[i].median)
        result.margin = list(ratio_with_ci(rates[:, [best, runner_up]]))
        result.clear = result.margin[1] > 1 + MIN_EFFECT
    else:
        result.clear = True
    return result


def _split(ratio: tuple[float, float, float]) -> tuple[float, list[float]]:
    return ratio[0], [ratio[1], ratio[2]]
