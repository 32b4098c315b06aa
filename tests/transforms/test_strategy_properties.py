"""Property: any drawn strategy either runs correctly or is rejected up front with a clear message."""
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels_mlir.spec import KernelSpec
from pipelines.compile import compile_strategy
from pipelines.targets import host_target
from runner.measure.verify import verify
from transforms.errors import StrategyError
from transforms.llvm_options import LLVMOptions
from transforms.steps import (HoistAccumulators, Legalize, LowerContraction, LowerTransfers, Pipeline, Prefetch,
                              ScalarLoads, Schedule, TileK, UnrollK, Vectorize)
from transforms.strategy import Strategy

MESSAGE = re.compile(r"^steps\[\d+\] \(\w+\)(\.\w+)?: \S")


@st.composite
def drawn_strategies(draw):
    mr = draw(st.integers(1, 8))
    nr = draw(st.sampled_from([4, 6, 8, 12, 16, 24]))
    kc = draw(st.sampled_from([6, 8, 16, 24, 48]))
    dtype = draw(st.sampled_from(["f32", "f64"]))
    steps = [TileK(draw(st.sampled_from([1, 1, 2, 3]))), Vectorize()]
    if draw(st.booleans()):
        steps.append(Legalize())
    steps += [HoistAccumulators(), LowerContraction(draw(st.sampled_from(["outerproduct", "outerproduct", "dot"]))),
              LowerTransfers()]
    if draw(st.booleans()):
        steps.append(ScalarLoads())
    unroll = draw(st.sampled_from([None, 2, 3, 4, "total"]))
    if unroll is not None:
        steps.append(UnrollK(unroll))
    stages = draw(st.sampled_from([None, None, 2, 3]))
    if stages:
        steps.append(Pipeline(stages))
    if draw(st.booleans()):
        steps.append(Prefetch(draw(st.integers(1, 8)), draw(st.integers(0, 3))))
    policy = draw(st.sampled_from([None, "as-built", "loads-first", "interleave", "random"]))
    if policy:
        steps.append(Schedule(policy, draw(st.integers(0, 4)), draw(st.integers(0, 99))))
    if draw(st.integers(0, 4)) == 0:  # sometimes an arbitrary order
        steps = draw(st.permutations(steps))
    opt = draw(st.sampled_from(["none", "O1"]))
    return mr, nr, kc, dtype, tuple(steps), opt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn_strategies())
def test_every_strategy_runs_correctly_or_is_rejected_clearly(drawn):
    mr, nr, kc, dtype, steps, opt = drawn
    host = host_target()
    try:
        strategy = Strategy("p", KernelSpec(mr, nr, kc, dtype), steps, LLVMOptions(opt=opt))
        strategy.validate_for(host.lanes(dtype))
    except StrategyError as exc:
        assert MESSAGE.match(str(exc)), str(exc)
        return
    check = verify(compile_strategy(strategy, host).code, strategy.kernel, seed=kc)
    assert check.correct, check.message
