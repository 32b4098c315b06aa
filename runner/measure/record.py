"""One strategy's outcome: what the table, the JSON lines and the database all show."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernels_mlir.spec import KernelSpec
from transforms.strategy import Strategy

from runner.measure import trust
from runner.measure.timing import Measurement

if TYPE_CHECKING:  # (verify runs problems through their kinds, whose tables show records)
    from runner.measure.verify import Verification

#: Outcomes a strategy can have. Only verified kernels carry figures: "ok", or "disturbed" when
#: their fraction of peak stayed above 1.0 after re-measuring (the figures are kept, not believed).
#: "skipped": the strategy's target does not run on this host (nothing compiled or stored).
STATUSES = ("ok", "disturbed", "wrong_answer", "compile_error", "crash", "timeout", "skipped")
MEASURED = ("ok", "disturbed")


@dataclass
class Record:
    strategy: Strategy
    target: str
    status: str
    compile_seconds: float | None = None
    verification: Verification | None = None
    measurement: Measurement | None = None
    #: The FMA peak at the kernel's width, sampled in alternation with `measurement`.
    peak: Measurement | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Vector width (bits) of the kernel's FMAs, at which the peak was measured.
    vector_bits: int | None = None

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status
        # A wrong kernel never carries a performance figure, whatever the caller passed.
        assert self.status in MEASURED or self.measurement is None, "only verified kernels are timed"

    @property
    def peak_gflops(self) -> float | None:
        return None if self.peak is None else trust.peak_reference(self.peak.gflops_samples)

    @property
    def fraction_of_peak(self) -> float | None:
        if self.measurement is None or self.peak is None:
            return None
        return trust.fraction(self.measurement.median, self.peak.gflops_samples)

    def workload(self) -> tuple[str, dict[str, Any]]:
        """(kind, problem): what was computed, apart from how. A GEMM record says its problem in `extra`."""
        return self.extra.get("kind", KernelSpec.kind), self.extra.get("problem") or self.strategy.kernel.to_dict()

    @property
    def noisy(self) -> bool:
        return self.measurement is not None and trust.is_noisy(self.measurement.cv)

    def to_json(self) -> dict[str, Any]:
        m, v = self.measurement, self.verification
        return {
            "name": self.strategy.name,
            "strategy_hash": self.strategy.hash,
            "target": self.target,
            "status": self.status,
            "correct": None if v is None else v.correct,
            "max_abs_error": None if v is None else v.max_abs_error,
            "gflops": None if m is None else m.median,
            "gflops_min": None if m is None else m.minimum,
            "gflops_max": None if m is None else m.maximum,
            "cv": None if m is None else m.cv,
            "samples": None if m is None else len(m.gflops_samples),
            "peak_gflops": self.peak_gflops,
            "fraction_of_peak": self.fraction_of_peak,
            "vector_bits": self.vector_bits,
            "noisy": self.noisy,
            "compile_seconds": self.compile_seconds,
            "error": self.error or (v.message if v else ""),
            "strategy": self.strategy.to_dict(),
            **self.extra,
        }


def rank(data: dict[str, Any]) -> tuple[float, float]:
    """The one order every listing uses (a record's JSON, or a stored row): GFLOP/s, then fraction of
    peak; unmeasured last. Not the fraction first: each kernel's peak is measured at its own vector
    width, so a ymm kernel at 99% of the ymm peak is slower than a zmm one at 78% of the zmm peak."""
    return (-(data.get("gflops") or 0.0), -(data.get("fraction_of_peak") or 0.0))
