"""`ukl run` on a config of kind "gemm": every strategy's micro-kernel inside a full GEMM, for every
shape, verified against NumPy and timed against numpy.matmul (OpenBLAS, one thread) in one process."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Iterator

from kernels_mlir.gemm import GemmSpec
from pipelines.compile_gemm import compile_gemm
from pipelines.targets import Target
from transforms.strategy import Strategy

from .config import Experiment
from .benchmark import peak_kernel
from .evaluate import COMPILE_ERRORS, one_line
from .gemm_bench import measure_gemm, verify_gemm
from .record import Record
from .timing import TimingPolicy
from .trust import DISTURBED, fraction, until_plausible


def gemm_hash(strategy: Strategy, spec: GemmSpec) -> str:
    """Identifies the generated GEMM: the micro-kernel's strategy and the GEMM's shape and blocking."""
    body = json.dumps({"kernel": strategy.hash, "gemm": dataclasses.asdict(spec)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def evaluate_gemm(strategy: Strategy, spec: GemmSpec, target: Target, policy: TimingPolicy) -> Record:
    named = dataclasses.replace(strategy, name=f"{strategy.name}@{spec.m}x{spec.n}x{spec.k}")
    extra = {"kind": "gemm", "gemm_hash": gemm_hash(strategy, spec),
             "problem": {"m": spec.m, "n": spec.n, "k": spec.k, "dtype": spec.dtype, "accumulate": spec.accumulate},
             "shape": [spec.m, spec.n, spec.k], "gemm": dataclasses.asdict(spec),
             "baseline": "numpy.matmul (OpenBLAS, 1 thread)", "baseline_gflops": None,
             "ratio_to_baseline": None, "ratio_ci": None}
    try:
        compiled = compile_gemm(spec, strategy, target)
    except COMPILE_ERRORS as exc:
        return Record(named, target.name, "compile_error", error=one_line(exc), extra=extra)
    check = verify_gemm(compiled.code, spec)
    if not check.correct:
        return Record(named, target.name, "wrong_answer", compiled.seconds, check, error=check.message, extra=extra)
    bits = compiled.vector_bits
    peak = peak_kernel(target, spec.dtype, bits)
    g, disturbed = until_plausible(lambda: measure_gemm(compiled.code, spec, policy, peak),
                                   lambda m: fraction(m.ours.median, m.peak.gflops_samples))
    extra.update(baseline_gflops=g.baseline.median, baseline_gflops_min=g.baseline.minimum,
                 baseline_gflops_max=g.baseline.maximum, ratio_to_baseline=g.ratio, ratio_ci=[g.ci_low, g.ci_high],
                 baseline_call_overhead_us=g.baseline_call_overhead_us)
    return Record(named, target.name, "disturbed" if disturbed else "ok", compiled.seconds, check, g.ours, g.peak,
                  error=DISTURBED if disturbed else "", extra=extra, vector_bits=bits)


def gemm_records(experiment: Experiment, target: Target) -> Iterator[Record]:
    for strategy in experiment.strategies:
        for shape in experiment.gemm.shapes:
            spec = experiment.gemm.spec(strategy, shape)
            yield evaluate_gemm(strategy, spec, target, experiment.timing)
