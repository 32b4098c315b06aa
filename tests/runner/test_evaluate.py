"""A wrong kernel is recorded as wrong and never timed; a right one carries its figures."""
from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects import arith

from kernels_mlir.spec import KernelSpec
from runner.evaluate import evaluate
from transforms import ir_query as q
from transforms.steps import Step
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from ..conftest import FAST_TIMING, best_host_strategy


@dataclass(frozen=True)
class SkipLastK(Step):
    """Test-only sabotage, an off-by-one: the k loop stops one step early."""

    kind: ClassVar[str] = "test_skip_last_k"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            (loop,) = q.ops_named(q.kernel_function(module), "scf.for")
            upper = q.constant_int(loop.operands[1])
            with ir.InsertionPoint(loop):
                loop.operands[1] = arith.constant(ir.IndexType.get(), upper - 1)
        return "// sabotage"


def test_wrong_kernel_is_reported_incorrect_and_not_timed(host):
    spec = KernelSpec(4, 8, 32)
    wrong = Strategy("wrong", spec, REGISTER_RESIDENT_STEPS[:1] + (SkipLastK(),) + REGISTER_RESIDENT_STEPS[1:])
    record = evaluate(wrong, host, FAST_TIMING, peak=None)
    assert record.status == "wrong_answer"
    assert record.verification is not None and not record.verification.correct
    assert record.measurement is None
    data = record.to_json()
    assert data["correct"] is False and data["gflops"] is None and data["fraction_of_peak"] is None
    assert "expected" in data["error"]


def test_right_kernel_is_timed_with_spread(host):
    record = evaluate(best_host_strategy(), host, FAST_TIMING, peak=None)
    assert record.status == "ok" and record.verification.correct
    m = record.measurement
    assert len(m.gflops_samples) == 10 and m.minimum <= m.median <= m.maximum and m.cv >= 0
