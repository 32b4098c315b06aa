"""One candidate lifecycle for every problem kind: build, verify, measure, and one Record as outcome.

`ukl run` (micro-kernels and GEMMs), the sweep workers, `compare`, `crossover` and `mca` all build
and verify through here, so a candidate is compiled and checked the same way whichever command
asks. Exceptions are classified on purpose: BUILD_ERRORS mean "this candidate does not compile"
and become a `compile_error` record; anything else is a harness bug and propagates.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.problem import Problem
from kernels_mlir.spec import KernelSpec, SpecError
from pipelines.codegen import CodegenError, MachineCode
from pipelines.compile import compile_strategy
from pipelines.compile_gemm import compile_gemm
from pipelines.lowering import LoweringError
from pipelines.targets import Target
from transforms.errors import StepFailed, StrategyError
from transforms.strategy import Strategy

from runner.measure.baselines import baselines_for
from runner.measure.parallel import launch, measurement_cpus
from runner.measure.peak import alongside_peak, parallel_peak, peak_kernel
from runner.measure.record import Record
from runner.measure.stats import ratio_with_ci
from runner.measure.timing import TimingPolicy, pinned_to_one_cpu
from runner.measure.trust import DISTURBED, fraction, until_plausible
from runner.measure.verify import Verification, verify, verify_anywhere

#: What "the candidate does not compile" is: a strategy or problem the target cannot take, a step
#: that did not deliver its promise, a lowering or LLVM failure. Nothing else is caught.
BUILD_ERRORS = (StrategyError, SpecError, StepFailed, LoweringError, CodegenError)


@dataclass(frozen=True)
class Candidate:
    """A strategy applied to a problem on a target: the unit every command builds, checks and times."""

    strategy: Strategy
    problem: Problem
    target: Target

    @classmethod
    def microkernel(cls, strategy: Strategy, target: Target) -> "Candidate":
        return cls(strategy, strategy.kernel, target)

    @property
    def named(self) -> Strategy:
        """The strategy under the name its records carry (a GEMM's says its shape)."""
        if isinstance(self.problem, GemmSpec):
            p = self.problem
            how = p.traversal + (f"-mc{p.mc}-nc{p.nc}" if p.traversal == "blis" else "") + \
                (f"-pb{p.pack_bytes}" if p.pack_bytes is not None and p.traversal == "blis" else "") + \
                (f"-{p.inner}" if p.inner != "ir" and p.traversal != "direct" else "") + \
                (f"-t{p.threads}{p.split if p.traversal != 'direct' else ''}" if p.threads > 1 else "")
            return dataclasses.replace(self.strategy, name=f"{self.strategy.name}@{p.m}x{p.n}x{p.k}/{how}")
        return self.strategy

    def identity(self) -> dict[str, Any]:
        """The fields that say what a record is about, beyond the strategy."""
        ids: dict[str, Any] = {"kind": self.problem.kind, "problem": self.problem.workload()}
        if isinstance(self.problem, GemmSpec):
            spec = dataclasses.asdict(self.problem)
            ids.update(gemm_hash=self._gemm_hash(), gemm=spec, shape=[self.problem.m, self.problem.n, self.problem.k])
        return ids

    def _gemm_hash(self) -> str:
        body = json.dumps({"kernel": self.strategy.hash, "gemm": dataclasses.asdict(self.problem)}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        """What identifies the candidate's code and problem in the store: a GEMM's hash, or the strategy's."""
        return self._gemm_hash() if isinstance(self.problem, GemmSpec) else self.strategy.hash

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for sweep workers and reproducers): strategy, problem with its kind, target name."""
        return {"strategy": self.strategy.to_dict(),
                "problem": {"kind": self.problem.kind, **dataclasses.asdict(self.problem)},
                "target": self.target.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any], target: Target) -> "Candidate":
        """Inverse of to_dict, on `target` (the caller resolves the name: it decides what runs here)."""
        problem = dict(data["problem"])
        kind = problem.pop("kind")
        strategy = Strategy.from_dict(data["strategy"])
        return cls(strategy, GemmSpec(**problem) if kind == "gemm" else KernelSpec(**problem), target)

    def record(self, status: str, **fields: Any) -> Record:
        extra = {**self.identity(), **fields.pop("extra", {})}
        return Record(self.named, self.target.name, status, extra=extra, **fields)


def record_key(record: Record) -> str:
    """The key (Candidate.key) of the candidate a record is about."""
    return record.extra.get("gemm_hash") or record.strategy.hash


@dataclass
class Built:
    candidate: Candidate
    code: MachineCode
    seconds: float
    #: The width of the code's FMAs (its peak is measured at this width).
    vector_bits: int
    stages: dict[str, str] = field(default_factory=dict)


def build(candidate: Candidate, *, jit: bool | None = None, stages: dict[str, str] | None = None) -> Built:
    """Compile the candidate (raises one of BUILD_ERRORS when it does not compile). `stages`, when
    given, receives every intermediate form as it is produced, so it holds them as far as they got."""
    strategy, problem, target = candidate.strategy, candidate.problem, candidate.target
    if isinstance(problem, GemmSpec):
        started = time.perf_counter()
        compiled = compile_gemm(problem, strategy, target, jit=jit)
        return Built(candidate, compiled.code, time.perf_counter() - started, compiled.vector_bits)
    if problem != strategy.kernel:
        raise StrategyError(f"the strategy builds a {strategy.kernel} kernel, the problem is {problem}")
    compiled = compile_strategy(strategy, target, jit=jit, stages=stages)
    return Built(candidate, compiled.code, compiled.seconds, compiled.vector_bits, compiled.stages)


def build_or_record(candidate: Candidate, **options: Any) -> Built | Record:
    """The built candidate, or the `compile_error` record saying why there is none."""
    try:
        return build(candidate, **options)
    except BUILD_ERRORS as exc:
        return candidate.record("compile_error", error=one_line(exc))


def check(built: Built) -> tuple[Verification | None, str]:
    """(verification, how): natively when the code runs here, under qemu for AArch64, else (None, why)."""
    return verify_anywhere(built.code, built.candidate.problem, built.candidate.target.is_aarch64)


def measure(built: Built, policy: TimingPolicy, check_result: Verification, cpu: int | None = None) -> Record:
    """Time the verified candidate, its baselines and the FMA peak at its width in rotating alternation.
    A fraction of peak above 1.0 is measured again, and recorded `disturbed` if it stays."""
    candidate, problem = built.candidate, built.candidate.problem
    threads = getattr(problem, "threads", 1)
    peak = parallel_peak([peak_kernel(candidate.target, problem.dtype, built.vector_bits,
                                      candidate.strategy.instruction) for _ in range(threads)])
    cpus = cpu if threads == 1 else set(measurement_cpus(threads))

    def once():
        ops = problem.operands(seed=1)
        ours = launch(built.code, problem, ops, bench=True)
        bases = baselines_for(problem, ops)
        with threadpool_limits(limits=threads, user_api="blas"):
            (mine, *theirs), peak_m = alongside_peak([ours, *(b.run for b in bases)],
                                                     [problem.flops] * (1 + len(bases)), peak, policy, cpus)
        return mine, theirs, peak_m, bases

    (mine, theirs, peak_m, bases), disturbed = until_plausible(
        once, lambda result: fraction(result[0].median, result[2].gflops_samples))
    extra: dict[str, Any] = {}
    figures = []
    for base, theirs_m in zip(bases, theirs):  # each baseline, and ours over it per alternated round
        ratio, low, high = ratio_with_ci(np.column_stack([mine.gflops_samples, theirs_m.gflops_samples]))
        with pinned_to_one_cpu(cpus):
            overhead = base.call_overhead()
        figures.append({"name": base.name, "configuration": base.configuration, "gflops": theirs_m.median,
                        "gflops_min": theirs_m.minimum, "gflops_max": theirs_m.maximum, "ratio": ratio,
                        "ratio_ci": [low, high], "call_overhead_us": overhead * 1e6})
    if figures:  # the first (OpenBLAS) also under the names the store's columns have
        first = figures[0]
        extra = {"baselines": figures, "baseline": first["configuration"], "baseline_gflops": first["gflops"],
                 "baseline_gflops_min": first["gflops_min"], "baseline_gflops_max": first["gflops_max"],
                 "ratio_to_baseline": first["ratio"], "ratio_ci": first["ratio_ci"],
                 "baseline_call_overhead_us": first["call_overhead_us"]}
    return candidate.record("disturbed" if disturbed else "ok", compile_seconds=built.seconds,
                            verification=check_result, measurement=mine, peak=peak_m,
                            error=DISTURBED if disturbed else "", vector_bits=built.vector_bits, extra=extra)


def verify_and_measure(built: Built, policy: TimingPolicy, cpu: int | None = None) -> Record:
    """Verify in this process; only a correct candidate is timed."""
    result = verify(built.code, built.candidate.problem)
    if not result.correct:
        return built.candidate.record("wrong_answer", compile_seconds=built.seconds, verification=result,
                                      error=result.message)
    return measure(built, policy, result, cpu)


def evaluate(candidate: Candidate, policy: TimingPolicy, cpu: int | None = None) -> Record:
    """Build, verify, measure: the whole lifecycle of one candidate on a target that runs here."""
    built = build_or_record(candidate)
    return built if isinstance(built, Record) else verify_and_measure(built, policy, cpu)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"
