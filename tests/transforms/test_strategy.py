import json

import pytest

from kernels_mlir.spec import KernelSpec
from transforms.errors import StrategyError
from transforms.llvm_options import LLVMOptions
from transforms.steps import (HoistAccumulators, LowerContraction, LowerTransfers, TileK, UnrollK, Vectorize,
                              step_from_config)
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from ..conftest import best_host_strategy


def test_hash_is_stable_and_ignores_the_name():
    s = best_host_strategy()
    # A literal: the hash must not change between runs, machines or Python versions.
    assert s.hash == "7e30c592494b1373"
    assert Strategy("other-name", s.kernel, s.steps, s.llvm).hash == s.hash
    assert Strategy(s.name, s.kernel, s.steps, LLVMOptions(opt="O2")).hash != s.hash


def test_json_round_trip_preserves_equality_and_hash():
    s = best_host_strategy()
    again = Strategy.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.hash == s.hash


def test_strategies_are_immutable_and_hashable():
    s = best_host_strategy()
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]
    assert len({s, best_host_strategy()}) == 1


@pytest.mark.parametrize("steps,message", [
    ((Vectorize(), HoistAccumulators()), r"steps\[1\] \(hoist_accumulators\): needs a k loop"),
    ((TileK(1), LowerContraction()), r"steps\[1\] \(lower_contraction\): needs a vector.contract"),
    ((TileK(1), Vectorize(), UnrollK(2), HoistAccumulators()), r"cannot come after 'unroll_k'"),
    ((TileK(1), Vectorize(), UnrollK("total"), UnrollK(2)), r"steps\[3\] \(unroll_k\): needs a k loop"),
    ((TileK(3),), r"steps\[0\] \(tile_k\)\.size: must be a positive divisor of kc=64"),
    ((TileK(1), UnrollK(1)), r"factor: must be an integer >= 2"),
])
def test_impossible_orders_and_values_are_rejected_up_front(steps, message):
    with pytest.raises(StrategyError, match=message):
        Strategy("s", KernelSpec(4, 8, 64), steps)


@pytest.mark.parametrize("raw,message", [
    ("vectorise", r"unknown step 'vectorise'"),
    ({"step": "tile_k", "sise": 2}, r"\.sise: unknown field of step 'tile_k'"),
    ({"step": "tile_k", "size": "2"}, r"\.size: must be int"),
    ({"step": "unroll_k", "factor": True}, r"\.factor: must be int or str"),
    ({"step": "lower_contraction", "lowering": "magic"}, r"\.lowering: must be one of"),
    (42, r"a step is a name or a table"),
])
def test_step_config_errors_name_the_field(raw, message):
    with pytest.raises(StrategyError, match=message):
        step_from_config(raw, "steps[0]")


def test_default_steps_reach_register_resident_code():
    assert [s.kind for s in REGISTER_RESIDENT_STEPS] == [
        "tile_k", "vectorize", "hoist_accumulators", "lower_contraction", "lower_transfers"]


def test_lowering_steps_in_either_order_enable_the_scheduling_steps():
    from transforms.steps import Schedule
    spec = KernelSpec(4, 8, 64)
    for lowering in ((LowerContraction(), LowerTransfers()), (LowerTransfers(), LowerContraction())):
        Strategy("s", spec, (TileK(1), Vectorize(), HoistAccumulators(), *lowering, Schedule("loads-first")))
    with pytest.raises(StrategyError, match=r"steps\[4\] \(schedule\): needs 1-D vector code"):
        Strategy("s", spec, (TileK(1), Vectorize(), HoistAccumulators(), LowerContraction(), Schedule()))
