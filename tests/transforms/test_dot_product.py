"""Low-precision kernels on dot-product instructions: the assembly uses the instruction and nothing
else, integers agree exactly, bf16 within its bound, and impossible strategies are refused.

Every kernel is checked on every CI host: x86 kernels compiled for a named target that has the
instruction (assembly properties), and run natively where this host has the feature; Arm kernels
compiled for Neoverse V1 and run under qemu-aarch64 (installed by `make test`).
"""
from __future__ import annotations

import pytest

from kernels_mlir.spec import KernelSpec
from pipelines import asm_analysis as asm
from pipelines.compile import compile_peak, compile_strategy
from pipelines.targets import get_target, host_target
from kernels_mlir.names import KERNEL, PEAK
from runner.measure.verify import verify, verify_emulated
from transforms.dot_product import DotProduct, FoldUnitDims, TileRegisters
from transforms.errors import StrategyError
from transforms.instructions import INSTRUCTIONS
from transforms.steps import HoistAccumulators, LowerTransfers, TileK, UnrollK, Vectorize
from transforms.strategy import Strategy

from ..runner.sabotage_steps import SkipLastK


def dot_strategy(dtype: str, instruction: str, mr: int, nr: int, kc: int, bits: int | None = None,
                 unroll: bool = True, sabotage: bool = False) -> Strategy:
    """The lowp configs' steps: one k group per step, pieces of one instruction, kept in registers,
    the k loop unrolled by 2 when its trip count is even."""
    inst = INSTRUCTIONS[instruction]
    steps_k = kc // inst.k_group
    unroll = 2 if unroll and steps_k % 2 == 0 and steps_k > 2 else 1
    rows, cols = inst.tile(bits or (512 if inst.arch == "x86_64" else 128))
    steps = [TileK(inst.k_group), *([SkipLastK()] if sabotage else []), TileRegisters(rows, cols),
             *([FoldUnitDims()] if inst.matrix_tile else []), Vectorize(), HoistAccumulators(),
             DotProduct(instruction), LowerTransfers(), *([UnrollK(unroll)] if unroll > 1 else [])]
    spec = KernelSpec(mr, nr, kc, dtype, inst.k_group)
    return Strategy(f"{instruction}-{mr}x{nr}x{kc}", spec, tuple(steps), vector_bits=bits)


def hot_loop_mix(code, instruction: str) -> set[str]:
    """The multiply-accumulate mnemonics of the kernel's hot loop."""
    loop = asm.hot_loop(code.assembly, KERNEL)
    return {i.mnemonic for i in loop if asm.is_fma(i) or i.mnemonic in ("imul", "vpmulld", "vpmaddwd", "mul", "mla")}


X86_CASES = [  # (dtype, instruction, mr, nr, kc, bits): edge sizes included (one row, one k group)
    ("u8s8", "vpdpbusd", 1, 16, 4, None),
    ("u8s8", "vpdpbusd", 3, 16, 8, None),
    ("u8s8", "vpdpbusd", 4, 32, 64, None),
    ("u8s8", "vpdpbusd", 5, 8, 12, 256),
    ("bf16", "vdpbf16ps", 1, 16, 2, None),
    ("bf16", "vdpbf16ps", 6, 32, 64, None),
    ("bf16", "vdpbf16ps", 3, 8, 10, 256),
]


@pytest.mark.parametrize("dtype,instruction,mr,nr,kc,bits", X86_CASES)
def test_x86_hot_loop_is_the_instruction_alone(dtype, instruction, mr, nr, kc, bits):
    code = compile_strategy(dot_strategy(dtype, instruction, mr, nr, kc, bits),
                            get_target("znver4"), jit=False).code
    assert hot_loop_mix(code, instruction) == {instruction}
    dots = [i for i in asm.hot_loop(code.assembly, KERNEL) if i.mnemonic == instruction]
    assert {asm.fma_bits(i) for i in dots} == {bits or 512}


@pytest.mark.parametrize("dtype,instruction,mr,nr,kc,bits", X86_CASES)
def test_x86_kernel_agrees_with_numpy_on_this_host(dtype, instruction, mr, nr, kc, bits):
    host = host_target()
    if host.lacks(instruction):
        pytest.skip(f"host lacks {host.lacks(instruction)}: its assembly is checked for znver4 above")
    s = dot_strategy(dtype, instruction, mr, nr, kc, bits)
    check = verify(compile_strategy(s, host).code, s.kernel, seed=3)
    assert check.correct, check.message
    assert check.max_abs_error == 0 if dtype == "u8s8" else check.max_abs_error > 0


ARM_CASES = [
    ("s8s8", "smmla", 2, 2, 8),
    ("s8s8", "smmla", 8, 8, 64),
    ("s8s8", "smmla", 6, 4, 24),
    ("s8s8", "sdot", 1, 4, 4),
    ("s8s8", "sdot", 3, 12, 32),
    ("bf16", "bfmmla", 4, 8, 32),
    ("bf16", "bfmmla", 2, 2, 4),
]


@pytest.mark.emulation
@pytest.mark.parametrize("dtype,instruction,mr,nr,kc", ARM_CASES)
def test_arm_kernel_agrees_with_numpy_under_qemu(dtype, instruction, mr, nr, kc):
    s = dot_strategy(dtype, instruction, mr, nr, kc)
    code = compile_strategy(s, get_target("neoverse-v1"), jit=False).code
    assert hot_loop_mix(code, instruction) == {instruction}
    check = verify_emulated(code, s.kernel, seed=5)
    assert check.correct, check.message
    assert check.max_abs_error == 0 if dtype == "s8s8" else check.max_abs_error > 0


@pytest.mark.emulation
def test_a_sabotaged_int8_kernel_is_reported_wrong_answer_under_qemu():
    """What `ukl mca` reports for an Arm kernel that runs, under qemu, to a wrong answer."""
    from runner.cli.mca import predict_candidates
    from runner.measure.lifecycle import Candidate
    s = dot_strategy("s8s8", "smmla", 4, 4, 32, unroll=False, sabotage=True)
    (record,) = predict_candidates([Candidate.microkernel(s, get_target("neoverse-v1"))])
    assert record["status"] == "wrong_answer" and record["verification"] == "qemu-aarch64"
    assert "expected" in record["error"] and record["predicted_fraction_of_peak"] is None


def test_a_sabotaged_low_precision_kernel_is_reported_wrong_answer(host):
    from runner.measure.lifecycle import Candidate, evaluate
    from ..conftest import FAST_TIMING
    instruction = "vpdpbusd" if not host.lacks("vpdpbusd") else None
    if instruction is None:
        pytest.skip("host lacks AVX512-VNNI: test_a_sabotaged_int8_kernel_is_reported_wrong_answer_under_qemu covers it")
    record = evaluate(Candidate.microkernel(dot_strategy("u8s8", instruction, 4, 16, 32, unroll=False, sabotage=True), host),
                      FAST_TIMING)
    assert record.status == "wrong_answer" and record.measurement is None


@pytest.mark.parametrize("instruction,target", [("vdpbf16ps", "znver4"), ("vpdpbusd", "znver4"),
                                                ("smmla", "neoverse-v1"), ("bfmmla", "neoverse-v2"),
                                                ("sdot", "neoverse-n1")])
def test_peak_kernel_is_independent_chains_of_the_instruction(instruction, target):
    t = get_target(target)
    inst = INSTRUCTIONS[instruction]
    bits = 512 if inst.arch == "x86_64" else 128
    loop = asm.hot_loop(compile_peak(t, inst.dtype, bits, instruction).assembly, PEAK)
    dots = [i for i in loop if i.mnemonic == instruction]
    assert len(dots) >= t.peak_accumulators and {i.mnemonic for i in loop if asm.is_fma(i)} == {instruction}


def test_theoretical_peak_counts_multiply_adds_times_two():
    v1 = get_target("neoverse-v1")
    # smmla: a 2x8 by 8x2 product (32 multiply-adds) on each of 4 pipes per cycle.
    assert v1.peak_flops_per_cycle("s8s8", 128, "smmla") == 2 * 32 * 4
    assert get_target("znver4").peak_flops_per_cycle("bf16", 512, "vdpbf16ps") is None  # no cited figure


@pytest.mark.parametrize("steps_change,message", [
    (lambda s: s[:2] + s[3:], r"needs 'fold_unit_dims' before 'vectorize'"),
    (lambda s: [TileK(8), TileRegisters(1, 4), *s[2:]], r"updates a 2x2 C tile"),
])
def test_impossible_dot_product_strategies_are_refused(steps_change, message):
    good = dot_strategy("s8s8", "smmla", 4, 4, 32)
    with pytest.raises(StrategyError, match=message):
        Strategy("bad", good.kernel, tuple(steps_change(list(good.steps)))).validate_for(lanes=4)


def test_instruction_of_another_dtype_or_grouping_is_refused():
    with pytest.raises(StrategyError, match=r"vdpbf16ps computes bf16, the kernel is u8s8"):
        Strategy("x", KernelSpec(1, 16, 8, "u8s8"), (TileK(4), TileRegisters(1, 16), Vectorize(),
                                                      DotProduct("vdpbf16ps"))).validate_for(lanes=16)
    with pytest.raises(StrategyError, match=r"smmla reads k in groups of 8, the kernel's panels group 4"):
        Strategy("x", KernelSpec(2, 2, 8, "s8s8", 4), (TileK(4), TileRegisters(2, 2), FoldUnitDims(), Vectorize(),
                                                       DotProduct("smmla"))).validate_for(lanes=4)


def test_missing_feature_is_named():
    assert get_target("znver3").lacks("vdpbf16ps") == ["avx512bf16"]
    assert get_target("neoverse-n1").lacks("smmla") == ["i8mm"]
    assert get_target("neoverse-v1").lacks("vpdpbusd") == ["x86_64"]


@pytest.mark.emulation
def test_a_real_int32_overflow_is_caught_under_qemu():
    """Operands chosen to overflow: the smmla kernel's i32 accumulators wrap, the int64 reference does not."""
    from runner.emulation.qemu import run_emulated
    from runner.measure.verify import judge
    s = dot_strategy("s8s8", "smmla", 2, 2, 16)
    code = compile_strategy(s, get_target("neoverse-v1"), jit=False).code
    ops = s.kernel.operands(seed=0)
    ops.c_block[...] = 2 ** 31 - 100
    ops.guarded["A"].view[...] = -128
    ops.guarded["B"].view[...] = -128
    expected, bound = s.kernel.expected(ops)
    run_emulated(code.object_code, s.kernel, ops)
    assert (expected > 2 ** 31 - 1).all()
    assert (ops.c.astype("int64") == expected - 2 ** 32).all()  # the hardware wrapped
    assert not judge(ops.c, expected, bound).correct
