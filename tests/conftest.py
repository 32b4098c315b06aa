"""Shared fixtures: strategies built the way configs build them, and a fast timing policy."""
from __future__ import annotations

import runner  # noqa: F401  (first: it tells OpenBLAS not to spin between calls, before NumPy loads it)

import pytest

from kernels_mlir.spec import KernelSpec
from pipelines.targets import host_target
from runner.measure.timing import TimingPolicy
from transforms.llvm_options import LLVMOptions
from transforms.steps import (HoistAccumulators, Legalize, LowerContraction, LowerTransfers, ScalarLoads, TileK,
                              UnrollK, Vectorize)
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from .runner.sabotage_steps import SkipLastK

#: Enough to exercise the timing path in tests; real figures come from `ukl run`.
FAST_TIMING = TimingPolicy(min_sample_seconds=0.002, samples=10)


def strategy(mr: int, nr: int, kc: int, dtype: str = "f32", *extra, opt: str = "O1", name: str = "t") -> Strategy:
    return Strategy(name, KernelSpec(mr, nr, kc, dtype), REGISTER_RESIDENT_STEPS + tuple(extra), LLVMOptions(opt=opt))


#: The register-resident steps with legalization to the native vector width.
LEGAL = (TileK(1), Vectorize(), Legalize(), HoistAccumulators(), LowerContraction(), LowerTransfers())


def legal_strategy(mr: int, nr: int, kc: int, dtype: str = "f32", *extra, name: str = "legal") -> Strategy:
    return Strategy(name, KernelSpec(mr, nr, kc, dtype), LEGAL + tuple(extra))


def best_host_strategy(kc: int = 256) -> Strategy:
    return strategy(6, 16, kc, "f32", ScalarLoads(), UnrollK(4), name="6x16-u4")


def sabotaged(mr: int, nr: int, kc: int, dtype: str = "f32") -> Strategy:
    """A strategy whose kernel is wrong in a way only running it can show."""
    spec = KernelSpec(mr, nr, kc, dtype)
    return Strategy("wrong", spec, REGISTER_RESIDENT_STEPS[:1] + (SkipLastK(),) + REGISTER_RESIDENT_STEPS[1:])


@pytest.fixture(scope="session")
def host():
    return host_target()


@pytest.fixture(scope="session")
def pg_cluster():
    """A real PostgreSQL server for the whole session, in a temporary folder (stopped afterwards)."""
    from .pg_cluster import Cluster
    cluster = Cluster().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster, request):
    """A new empty database on that server, for one test."""
    import re
    return pg_cluster.create_database(re.sub(r"\W", "_", request.node.name)[:50].lower())
