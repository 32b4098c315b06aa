"""Evaluate one strategy: compile, verify against NumPy, and only then time it."""
from __future__ import annotations

from pipelines.compile import Compiled, compile_strategy
from pipelines.lowering import LoweringError
from pipelines.targets import Target
from transforms.errors import StepFailed
from transforms.strategy import Strategy

from .benchmark import measure_kernel, peak_kernel
from .record import Record
from .timing import TimingPolicy
from .trust import DISTURBED, fraction, until_plausible
from .verify import verify

#: Exceptions that mean "this strategy does not compile", as opposed to a harness bug.
COMPILE_ERRORS = (StepFailed, LoweringError, RuntimeError)


def evaluate(strategy: Strategy, target: Target, policy: TimingPolicy) -> Record:
    compiled = compile_or_record(strategy, target)
    if isinstance(compiled, Record):
        return compiled
    return verify_and_time(compiled, policy)


def compile_or_record(strategy: Strategy, target: Target) -> Compiled | Record:
    """The compiled strategy, or the `compile_error` record saying why there is none."""
    try:
        return compile_strategy(strategy, target)
    except COMPILE_ERRORS as exc:
        return Record(strategy, target.name, "compile_error", error=one_line(exc))


def verify_and_time(compiled: Compiled, policy: TimingPolicy, cpu: int | None = None) -> Record:
    """Verify against NumPy; only a correct kernel is timed, in alternation with the FMA peak at
    the width its FMAs use. A fraction above 1.0 is re-measured, and recorded `disturbed` if it stays."""
    strategy, target = compiled.strategy, compiled.target
    check = verify(compiled.code, strategy.kernel)
    if not check.correct:
        return Record(strategy, target.name, "wrong_answer", compiled.seconds, check, error=check.message)
    bits = compiled.vector_bits
    peak = peak_kernel(target, strategy.kernel.dtype, bits)
    (kernel, peak_m), disturbed = until_plausible(
        lambda: measure_kernel(compiled.code, strategy.kernel, policy, peak, cpu),
        lambda pair: fraction(pair[0].median, pair[1].gflops_samples))
    return Record(strategy, target.name, "disturbed" if disturbed else "ok", compiled.seconds, check, kernel, peak_m,
                  error=DISTURBED if disturbed else "", vector_bits=bits)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"
