"""One candidate lifecycle for every problem kind: build, verify, measure, and one Record as outcome.

`ukl run` (micro-kernels and GEMMs), the sweep workers, `compare`, `crossover` and `mca` all build
and verify through here, so a candidate is compiled and checked the same way whichever command
asks. Exceptions are classified on purpose: BUILD_ERRORS mean "this candidate does not compile"
and become a `compile_error` record; anything else is a harness bug and propagates.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from kernels_mlir.problem import Problem
from kernels_mlir.spec import SpecError
from pipelines.codegen import CodegenError, MachineCode
from pipelines.lowering import LoweringError
from pipelines.targets import Target
from transforms.errors import StepFailed, StrategyError
from transforms.strategy import Strategy

from runner.kinds import ProblemKind, kind_named, kind_of, launch
from runner.measure.parallel import measurement_cpus
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
    def kind(self) -> ProblemKind:
        return kind_of(self.problem)

    @property
    def named(self) -> Strategy:
        """The strategy under the name its records carry (its kind's label: a GEMM's says its shape)."""
        label = self.kind.label(self.strategy, self.problem)
        return self.strategy if label == self.strategy.name else dataclasses.replace(self.strategy, name=label)

    def identity(self) -> dict[str, Any]:
        """The fields that say what a record is about, beyond the strategy."""
        return {"kind": self.problem.kind, "problem": self.problem.workload(),
                **self.kind.identity(self.strategy, self.problem)}

    @property
    def key(self) -> str:
        """What identifies the candidate's code and problem in the store (its kind decides)."""
        return self.kind.key(self.strategy, self.problem)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for sweep workers and reproducers): strategy, problem with its kind, target name."""
        return {"strategy": self.strategy.to_dict(),
                "problem": {"kind": self.problem.kind, **self.kind.to_dict(self.problem)},
                "target": self.target.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any], target: Target) -> "Candidate":
        """Inverse of to_dict, on `target` (the caller resolves the name: it decides what runs here)."""
        problem = dict(data["problem"])
        kind = kind_named(problem.pop("kind"))
        return cls(Strategy.from_dict(data["strategy"]), kind.from_dict(problem), target)

    def record(self, status: str, **fields: Any) -> Record:
        extra = {**self.identity(), **fields.pop("extra", {})}
        return Record(self.named, self.target.name, status, extra=extra, **fields)


def record_key(record: Record) -> str:
    """The key (Candidate.key) of the candidate a record is about."""
    return record.extra.get("candidate_key") or record.strategy.hash


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
    started = time.perf_counter()
    compiled = candidate.kind.build(candidate.strategy, candidate.problem, candidate.target, jit, stages)
    return Built(candidate, compiled.code, time.perf_counter() - started, compiled.vector_bits, compiled.stages)


def build_or_record(candidate: Candidate, **options: Any) -> Built | Record:
    """The built candidate, or the `compile_error` record saying why there is none."""
    try:
        return build(candidate, **options)
    except BUILD_ERRORS as exc:
        return candidate.record("compile_error", error=one_line(exc))


def check(built: Built) -> tuple[Verification | None, str]:
    """(verification, how): natively when the code runs here, under qemu for AArch64, else (None, why)."""
    return verify_anywhere(built.code, built.candidate.problem, built.candidate.target)


def measure(built: Built, policy: TimingPolicy, check_result: Verification, cpu: int | None = None) -> Record:
    """Time the verified candidate, its baselines and the FMA peak at its width in rotating alternation.
    A fraction of peak above 1.0 is measured again, and recorded `disturbed` if it stays."""
    candidate, problem = built.candidate, built.candidate.problem
    threads = candidate.kind.threads(problem)
    peak = parallel_peak([peak_kernel(candidate.target, problem.dtype, built.vector_bits,
                                      candidate.strategy.instruction) for _ in range(threads)])
    cpus = cpu if threads == 1 else set(measurement_cpus(threads))

    def once():
        ops = problem.operands(seed=1)
        ours = launch(built.code, problem, ops, bench=True)
        bases = candidate.kind.baselines(problem, ops)
        flops = [problem.flops * products for products in (1, *(b.products for b in bases))]
        with threadpool_limits(limits=threads, user_api="blas"):
            (mine, *theirs), peak_m = alongside_peak([ours, *(b.run for b in bases)], flops, peak, policy, cpus)
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
