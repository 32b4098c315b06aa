"""Evaluate one strategy: compile, verify against NumPy, and only then time it."""
from __future__ import annotations

from pipelines.compile import compile_strategy
from pipelines.lowering import LoweringError
from pipelines.targets import Target
from transforms.errors import StepFailed

from .benchmark import measure_kernel
from .record import Record
from .timing import Measurement, TimingPolicy
from .verify import verify
from transforms.strategy import Strategy

#: Exceptions that mean "this strategy does not compile", as opposed to a harness bug.
COMPILE_ERRORS = (StepFailed, LoweringError, RuntimeError)


def evaluate(strategy: Strategy, target: Target, policy: TimingPolicy, peak: Measurement | None) -> Record:
    try:
        compiled = compile_strategy(strategy, target)
    except COMPILE_ERRORS as exc:
        return Record(strategy, target.name, "compile_error", error=one_line(exc))
    check = verify(compiled.code, strategy.kernel)
    if not check.correct:
        return Record(strategy, target.name, "wrong_answer", compiled.seconds, check, error=check.message)
    measurement = measure_kernel(compiled.code, strategy.kernel, policy)
    return Record(strategy, target.name, "ok", compiled.seconds, check, measurement, peak)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"
