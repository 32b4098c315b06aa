"""Shared fixtures: strategies built the way configs build them, and a fast timing policy."""
from __future__ import annotations

import pytest

from kernels_mlir.spec import KernelSpec
from pipelines.targets import host_target
from runner.timing import TimingPolicy
from transforms.llvm_options import LLVMOptions
from transforms.steps import ScalarLoads, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

#: Enough to exercise the timing path in tests; real figures come from `ukl run`.
FAST_TIMING = TimingPolicy(min_sample_seconds=0.002, samples=10)


def strategy(mr: int, nr: int, kc: int, dtype: str = "f32", *extra, opt: str = "O1", name: str = "t") -> Strategy:
    return Strategy(name, KernelSpec(mr, nr, kc, dtype), REGISTER_RESIDENT_STEPS + tuple(extra), LLVMOptions(opt=opt))


def best_host_strategy(kc: int = 256) -> Strategy:
    return strategy(6, 16, kc, "f32", ScalarLoads(), UnrollK(4), name="6x16-u4")


@pytest.fixture(scope="session")
def host():
    return host_target()
