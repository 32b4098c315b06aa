"""split_accumulators: twice the independent FMA chains, half as long each, and the same numbers."""
import pytest
from mlir import ir

from kernels_mlir.microkernel import build_microkernel
from kernels_mlir.spec import KernelSpec
from pipelines import asm_analysis as asm
from pipelines.compile import compile_strategy
from pipelines.targets import get_target
from runner.measure.verify import verify
from runner.search.space import strategy_for, vector_registers_needed, defaults
from transforms import ir_query as q
from transforms.apply import apply_strategy
from transforms.errors import StrategyError
from transforms.split_accumulators import SplitAccumulators, _longest_chain
from transforms.steps import CAfterLoop, ScalarLoads, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy

from ..conftest import LEGAL


def _loop(spec, steps, lanes=16):
    ctx = ir.Context()
    with ctx, ir.Location.unknown():
        module = build_microkernel(spec)
        apply_strategy(module, Strategy("t", spec, steps), lanes)
        (loop,) = q.ops_named(q.kernel_function(module), "scf.for")
        return ctx, module, loop


@pytest.mark.parametrize("unroll", [2, 4, 8])
def test_the_loop_carries_two_sets_of_half_length_chains(unroll):
    spec = KernelSpec(6, 16, 32)
    ctx_plain, module_plain, plain = _loop(spec, REGISTER_RESIDENT_STEPS + (ScalarLoads(), UnrollK(unroll)))
    ctx_split, module_split, split = _loop(spec, REGISTER_RESIDENT_STEPS + (ScalarLoads(), UnrollK(unroll),
                                                                            SplitAccumulators()))
    assert len(list(split.operands)) - 3 == 2 * (len(list(plain.operands)) - 3)
    assert _longest_chain(plain) == unroll and _longest_chain(split) == unroll // 2


@pytest.mark.parametrize("mr,nr,kc,dtype,extra", [
    (6, 16, 64, "f32", (ScalarLoads(), UnrollK(4))),
    (4, 8, 6, "f64", (UnrollK(3),)),
    (2, 24, 16, "f32", (ScalarLoads(), CAfterLoop(), UnrollK(2))),
    (1, 1, 4, "f32", (UnrollK(2),)),
])
def test_split_kernels_match_numpy(host, mr, nr, kc, dtype, extra):
    s = Strategy("s", KernelSpec(mr, nr, kc, dtype), REGISTER_RESIDENT_STEPS + extra + (SplitAccumulators(),))
    check = verify(compile_strategy(s, host).code, s.kernel, seed=mr + nr + kc)
    assert check.correct, check.message


def test_legalized_split_kernel_matches_numpy(host):
    s = Strategy("s", KernelSpec(12, 8, 32), LEGAL + (ScalarLoads(), UnrollK(2), SplitAccumulators()))
    assert verify(compile_strategy(s, host).code, s.kernel).correct


def test_6x16_on_avx512_keeps_twelve_zmm_accumulators():
    """6 zmm chains cannot cover 2 FMA units x latency 4; split, the hot loop has 12."""
    s = Strategy("s", KernelSpec(6, 16, 256), REGISTER_RESIDENT_STEPS + (ScalarLoads(), UnrollK(4),
                                                                           SplitAccumulators()))
    loop = asm.hot_loop(compile_strategy(s, get_target("skylake-avx512"), jit=False).code.assembly, "ukernel")
    fmas = [i for i in loop if asm.is_fma(i)]
    assert len(fmas) == 24 and len({i.operands[-1] for i in fmas}) == 12 and asm.spills(loop) == (0, 0)


def test_split_needs_an_unrolled_loop():
    with pytest.raises(StrategyError, match=r"\(split_accumulators\)\.k_loop: one k-step per iteration"):
        Strategy("s", KernelSpec(6, 16, 32), REGISTER_RESIDENT_STEPS + (SplitAccumulators(),))


def test_it_is_a_sweep_knob_that_doubles_the_accumulator_budget():
    s = strategy_for({"split_accumulators": True})
    assert s.steps[-1].kind == "split_accumulators" and s.name == "6x16x256-f32-sl-u4-split-O1"
    p = {**defaults(), "split_accumulators": True}
    assert vector_registers_needed(p, 8) == 6 * 2 * 2 + 2 + 1
