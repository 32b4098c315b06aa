"""`ukl calls`: where one call of a small kernel goes, in nanoseconds, each part with a 95% interval.

Everything is timed in one alternation (rounds of one sample each, in a rotating order), so load
and clock drift hit every part alike:

- kernel, native: the kernel called n times from its generated bench loop (what `ukl run` times);
- empty call, native: a function of the same signature that returns at once, from the same kind of
  loop: the loop step, the call with its memref arguments, the return (the harness's own call path);
- kernel and empty call from Python through ctypes, one Python call each;
- a JIT-cache lookup alone (runner.measure.jit_cache), and a lookup followed by the call;
- the baselines, per call (per node for ONNX Runtime's chain).

The parts are differences of these per round (arithmetic = kernel - empty, native; Python's call =
empty from Python - empty native), with bootstrap intervals of their medians; the first compile is
timed once per copy. Two sums are checked, each against a total measured on its own: the Python
call of the kernel against the empty Python call plus the arithmetic, and a lookup-and-call
against the lookup plus the Python call. Their residuals, with intervals, say whether the parts
account for the whole.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_mlir.small_gemm import EMPTY, EMPTY_BENCH
from pipelines.targets import Target
from transforms.strategy import Strategy

from runner.config.experiment import ConfigError
from runner.kinds import kind_of
from runner.measure.jit_cache import JitCache
from runner.measure.native import NativeFunction
from runner.measure.stats import bootstrap_ci
from runner.measure.timing import alternated_rates, pinned_to_one_cpu
from runner.measure.verify import verify

#: Compilations timed for the first-compile figure (each a miss of a fresh cache).
COMPILES = 3


@dataclass(frozen=True)
class Figure:
    """A per-call time in ns: the median over rounds and its 95% bootstrap interval."""

    name: str
    ns: float
    low: float
    high: float

    def to_json(self) -> dict:
        return {"name": self.name, "ns": self.ns, "ci": [self.low, self.high]}


@dataclass(frozen=True)
class CallCosts:
    label: str
    #: Parts of a call (positive by construction of a sound measurement), then measured totals,
    #: the residuals of the two sums, and the baselines per call.
    parts: tuple[Figure, ...]
    totals: tuple[Figure, ...]
    residuals: tuple[Figure, ...]
    baselines: tuple[tuple[Figure, str], ...]
    first_compile_ms: float
    rounds: int

    def to_json(self) -> dict:
        return {"label": self.label, "parts": [f.to_json() for f in self.parts],
                "totals": [f.to_json() for f in self.totals], "residuals": [f.to_json() for f in self.residuals],
                "baselines": [{**f.to_json(), "configuration": how} for f, how in self.baselines],
                "first_compile_ms": self.first_compile_ms, "rounds": self.rounds}


def _figure(name: str, per_round: np.ndarray) -> Figure:
    low, high = bootstrap_ci(per_round)
    return Figure(name, float(np.median(per_round)), low, high)


def _python_loop(call: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            call()
    return run


def call_costs(strategy: Strategy, problem, target: Target, rounds: int, min_sample_seconds: float) -> CallCosts:
    """The decomposition of one problem's call (a small kind's, whose module has the empty function)."""
    kind = kind_of(problem)
    label = kind.label(strategy, problem)
    compile_seconds = []
    for _ in range(COMPILES):
        cache = JitCache(target)
        started = time.perf_counter()
        code = cache.compile(problem, strategy)
        compile_seconds.append(time.perf_counter() - started)
    check = verify(code, problem)
    if not check.correct:
        raise ConfigError(f"{label}: computes a wrong answer ({check.message}); nothing to time")
    ops = problem.operands(seed=1)
    arrays = [g.view for g in ops.guarded.values()]
    key = strategy.hash
    entry = NativeFunction(code, problem.entry, arrays)
    empty = NativeFunction(code, EMPTY, arrays)

    def lookup_and_call() -> None:
        cache.get(problem, key)
        entry()
    runs = {"kernel, native": NativeFunction(code, problem.bench, arrays, n_scalars=1),
            "empty call, native": NativeFunction(code, EMPTY_BENCH, arrays, n_scalars=1),
            "kernel from Python": _python_loop(entry), "empty call from Python": _python_loop(empty),
            "cache lookup": _python_loop(lambda: cache.get(problem, key)),
            "lookup and kernel from Python": _python_loop(lookup_and_call)}
    bases = kind.baselines(problem, ops)
    names = list(runs) + [b.name for b in bases]
    products = [1] * len(runs) + [b.products for b in bases]
    with threadpool_limits(limits=1, user_api="blas"), pinned_to_one_cpu():
        rates, _ = alternated_rates([*runs.values(), *(b.run for b in bases)], products, min_sample_seconds, rounds)
    ns = {name: 1.0 / rates[:, i] for i, name in enumerate(names)}  # rate is calls per ns
    parts = (_figure("native call (loop step, call, return)", ns["empty call, native"]),
             _figure("arithmetic (kernel minus empty call, native)", ns["kernel, native"] - ns["empty call, native"]),
             _figure("Python to native (ctypes) beyond the native call",
                     ns["empty call from Python"] - ns["empty call, native"]),
             _figure("cache lookup", ns["cache lookup"]))
    totals = tuple(_figure(name, ns[name]) for name in
                   ("kernel, native", "kernel from Python", "lookup and kernel from Python"))
    residuals = (
        _figure("kernel from Python - (empty from Python + arithmetic)", ns["kernel from Python"] - (
            ns["empty call from Python"] + ns["kernel, native"] - ns["empty call, native"])),
        _figure("lookup and kernel - (lookup + kernel from Python)", ns["lookup and kernel from Python"] - (
            ns["cache lookup"] + ns["kernel from Python"])))
    baselines = tuple((_figure(b.name, ns[b.name]), b.configuration) for b in bases)
    return CallCosts(label, parts, totals, residuals, baselines, 1e3 * float(np.median(compile_seconds)), rounds)
