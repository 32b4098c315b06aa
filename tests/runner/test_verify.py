"""Verification proves that only the C block changed: A and B bit-identical, nothing written beside or
below C, for every problem kind, whatever the values in C."""
import numpy as np
import pytest

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.operands import GUARD
from kernels_mlir.spec import KernelSpec
from runner.measure.verify import check_call

PROBLEMS = [KernelSpec(6, 16, 32), GemmSpec(13, 17, 19, KernelSpec(6, 16, 32), mc=12, nc=32)]


def right_answer(problem, ops):
    expected, _ = problem.expected(ops)
    ops.c[...] = expected


def then(damage):
    """A kernel that computes C right, then does `damage` to the buffers (as stray pointer arithmetic would)."""
    def call(problem):
        def run(ops):
            right_answer(problem, ops)
            damage(ops)
        return run
    return call


DAMAGE = {
    "into A": (then(lambda ops: ops.guarded["A"].view.__setitem__((0, 0), 0.5)), "wrote into its input A"),
    "into B": (then(lambda ops: ops.guarded["B"].view.__setitem__((-1, -1), 0.5)), "wrote into its input B"),
    "before C": (then(lambda ops: ops.guarded["C"].buffer.__setitem__(GUARD - 1, 0.0)),
                 "wrote outside the C block: before it"),
    "below C": (then(lambda ops: ops.guarded["C"].buffer.__setitem__(-GUARD, 0.0)),
                "wrote outside the C block: after its last row"),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.kind)
@pytest.mark.parametrize("case", DAMAGE)
def test_a_write_outside_c_is_wrong_however_right_c_is(problem, case):
    make, message = DAMAGE[case]
    result = check_call(make(problem), problem)
    assert not result.correct and result.message == message


def test_a_write_beside_the_micro_kernels_c_block_within_its_leading_dimension_is_wrong():
    spec = PROBLEMS[0]
    result = check_call(then(lambda ops: ops.c_block.__setitem__((2, spec.nr), 0.0))(spec), spec)
    assert not result.correct and result.message.startswith("wrote outside the C block: beside it (row 2, column 16")


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.kind)
def test_the_right_answer_alone_verifies(problem):
    assert check_call(lambda ops: right_answer(problem, ops), problem).correct


def test_a_nan_written_into_an_input_is_seen():
    spec = PROBLEMS[0]
    ops = spec.operands(0)
    before = ops.snapshot()
    ops.guarded["A"].buffer[0] = np.float32(np.nan)
    assert ops.damage(before) == "wrote into its input A"


@pytest.mark.parametrize("step,message", [
    ("test_store_into_a", "wrote into its input A"),
    ("test_store_into_b", "wrote into its input B"),
    ("test_store_beside_c", "wrote outside the C block: beside it (row 0, column 16"),
    ("test_store_below_c", "wrote outside the C block: after its last row")])
def test_a_compiled_kernel_that_writes_where_it_must_not_is_a_wrong_answer(host, step, message):
    from runner.measure.lifecycle import Candidate, evaluate
    from transforms.steps import STEP_TYPES
    from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy
    from ..conftest import FAST_TIMING
    from . import sabotage_steps  # noqa: F401  (registers the steps)
    spec = KernelSpec(6, 16, 32)
    strategy = Strategy("stray", spec, REGISTER_RESIDENT_STEPS + (STEP_TYPES[step](),))
    record = evaluate(Candidate.microkernel(strategy, host), FAST_TIMING)
    assert record.status == "wrong_answer" and record.measurement is None
    assert record.error.startswith(message)


@pytest.mark.parametrize("step,message", [
    ("test_store_below_c", "wrote outside the C block: after its last row"),
    ("test_store_beside_c", "C[1,0] = "),  # column nr of a row is the next row's first element when ldc = N
])
def test_a_compiled_gemm_whose_kernel_writes_where_it_must_not_is_a_wrong_answer(host, step, message):
    """One tile (M = mr, N = nr): the micro-kernel's C view is the user's C, so its stray store lands
    past C's last row (in the guard) or on the next row's first element."""
    from kernels_mlir.gemm import GemmSpec
    from runner.measure.lifecycle import Candidate, evaluate
    from transforms.steps import STEP_TYPES
    from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy
    from ..conftest import FAST_TIMING
    from . import sabotage_steps  # noqa: F401  (registers the steps)
    strategy = Strategy("stray", KernelSpec(6, 16, 32), REGISTER_RESIDENT_STEPS + (STEP_TYPES[step](),))
    spec = GemmSpec(6, 16, 64, KernelSpec(6, 16, 32), mc=6, nc=16)
    record = evaluate(Candidate(strategy, spec, host), FAST_TIMING)
    assert record.status == "wrong_answer" and record.measurement is None
    assert record.error.startswith(message), record.error

