"""Compiled kernels: numerically right for many shapes, and the hot loop is what we asked for."""
import dataclasses

import pytest

from kernels_mlir.spec import KernelSpec
from pipelines import asm_analysis as asm
from pipelines.compile import compile_peak, compile_strategy
from pipelines.targets import TARGETS, UnknownTarget, get_target
from runner.measure.verify import verify
from transforms.llvm_options import LLVMOptions
from transforms.steps import Pipeline, Prefetch, ScalarLoads, Schedule, UnrollK
from transforms.strategy import Strategy

from ..conftest import LEGAL, best_host_strategy, legal_strategy, strategy


@pytest.mark.parametrize("mr,nr,kc,dtype,extra", [
    (6, 16, 256, "f32", (ScalarLoads(), UnrollK(4))),
    (4, 24, 64, "f32", ()),
    (8, 8, 128, "f32", (UnrollK("total"),)),
    (3, 5, 17, "f32", ()),
    (1, 1, 1, "f32", ()),
    (4, 8, 96, "f64", (ScalarLoads(), UnrollK(3))),
    (6, 4, 33, "f64", ()),
])
@pytest.mark.parametrize("opt", ["none", "O1"])
def test_jit_kernel_matches_numpy(host, mr, nr, kc, dtype, extra, opt):
    s = strategy(mr, nr, kc, dtype, *extra, opt=opt)
    check = verify(compile_strategy(s, host).code, s.kernel, seed=mr * nr + kc)
    assert check.correct, check.message
    assert check.max_abs_error < 1e-3


def test_hot_loop_is_vector_fmas_and_loads_only():
    code = compile_strategy(best_host_strategy(), get_target("znver3"), jit=False).code
    loop = asm.hot_loop(code.assembly, "ukernel")
    mix = asm.instruction_mix(loop)
    assert mix["fma"] == 12 * 4  # 6 rows x 2 ymm per row x unroll 4
    assert all(i.mnemonic == "vfmadd231ps" and "%ymm" in i.operands[-1] for i in loop if asm.is_fma(i))
    assert mix["store"] == 0  # accumulators never leave registers inside the loop
    assert mix["broadcast"] == 6 * 4 and all("(" in i.operands[0] for i in loop if asm.is_broadcast(i))
    vector_loads = [i for i in loop if asm.classify(i) == "load"]
    assert len(vector_loads) == 2 * 4 and all(i.mnemonic == "vmovups" for i in vector_loads)
    others = [i for i in loop if asm.classify(i) == "other"]
    assert not [i for i in others if asm.is_vector(i)], "no scalar or shuffle fallback in the loop"
    assert len(asm.vector_registers(loop)) <= 16


@pytest.mark.parametrize("name", ["host", "znver3", "znver4", "neoverse-n1"])
def test_peak_kernel_is_independent_vector_fma_chains_at_every_width(name):
    target = get_target(name)
    for bits in target.widths:
        code = compile_peak(target, "f32", bits)
        loop = asm.hot_loop(code.assembly, "ukl_fma_peak")
        fmas = [i for i in loop if asm.is_fma(i)]
        # 4 FMAs per chain per iteration; LLVM may unroll the loop further (znver5 capped to AVX2 does, 2x)
        assert len(fmas) % (4 * target.peak_accumulators) == 0 and fmas
        written = {i.operands[0] if target.is_aarch64 else i.operands[-1] for i in fmas}
        assert len(written) == target.peak_accumulators
        assert {asm.fma_bits(i) for i in fmas} == {bits}, f"{name} at {bits} bits"


def test_cross_target_assembly_without_jit():
    s = strategy(8, 8, 64, "f32", UnrollK(2))
    compiled = compile_strategy(s, get_target("neoverse-n1"))
    assert compiled.code.engine is None
    loop = asm.hot_loop(compiled.code.assembly, "ukernel")
    assert any(i.mnemonic == "fmla" for i in loop)


def test_unknown_target():
    assert TARGETS["znver3"].lanes("f64") == 4
    with pytest.raises(UnknownTarget, match="unknown target 'pentium'"):
        get_target("pentium")


def test_stages_are_kept_in_order_when_asked(host):
    compiled = compile_strategy(best_host_strategy(64), host, keep_stages=True)
    names = list(compiled.stages)
    assert names[0] == "00-payload.mlir" and names[-1] == "93-assembly.s"
    assert any("hoist_accumulators" in n for n in names)


# --- the strategy vocabulary stays numerically right ---------------------------------------



@pytest.mark.parametrize("mr,nr,kc,dtype,steps", [
    (12, 8, 64, "f32", LEGAL + (UnrollK(2), Schedule("interleave", 2), Prefetch(8))),
    (4, 24, 64, "f32", LEGAL + (ScalarLoads(), UnrollK(4))),
    (4, 16, 64, "f64", LEGAL + (ScalarLoads(), UnrollK("total"), Schedule("random", seed=3))),
    (6, 16, 64, "f32", LEGAL + (ScalarLoads(), UnrollK(2), Pipeline(2), Schedule("loads-first"))),
    (6, 8, 36, "f32", LEGAL + (Pipeline(3), Prefetch(2, locality=0, c=False))),
    (12, 8, 64, "f32", LEGAL + (UnrollK(2), Pipeline(2, carry="first-step"), Schedule("interleave", 2))),
    (6, 16, 48, "f64", LEGAL + (ScalarLoads(), UnrollK(4), Pipeline(3, carry="first-step"))),
])
def test_vocabulary_combinations_match_numpy(host, mr, nr, kc, dtype, steps):
    s = Strategy("t", KernelSpec(mr, nr, kc, dtype), steps)
    check = verify(compile_strategy(s, host).code, s.kernel, seed=kc)
    assert check.correct, check.message


def test_backend_flags_compile_in_a_child_and_do_not_leak(host):
    plain = best_host_strategy(64)
    before = compile_strategy(plain, get_target("znver3"), jit=False).code.assembly
    knobbed = Strategy("k", plain.kernel, plain.steps,
                       LLVMOptions(machine_scheduler=False, pre_ra_scheduler="source", post_ra_scheduler=False))
    compiled = compile_strategy(knobbed, host)
    assert verify(compiled.code, knobbed.kernel).correct  # object code from the child runs here
    assert compiled.code.assembly != before
    assert compile_strategy(plain, get_target("znver3"), jit=False).code.assembly == before


def test_the_isolated_code_generator_never_imports_from_the_working_directory(tmp_path, monkeypatch):
    planted = tmp_path / "pipelines"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "codegen_server.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    plain = best_host_strategy(64)
    knobbed = Strategy("k", plain.kernel, plain.steps, LLVMOptions(machine_scheduler=False))
    assert "vfmadd" in compile_strategy(knobbed, get_target("znver3"), jit=False).code.assembly
    assert not (tmp_path / "ran").exists()


def test_fast_math_contract_fuses_scalar_multiply_add():
    s = Strategy("t", KernelSpec(4, 8, 64), (), LLVMOptions(fast_math="contract"))
    plain = Strategy("t", KernelSpec(4, 8, 64), ())
    fused = compile_strategy(s, get_target("znver3"), jit=False).code.assembly
    unfused = compile_strategy(plain, get_target("znver3"), jit=False).code.assembly
    assert fused.count("vfmadd") > 0 and unfused.count("vfmadd") == 0


def test_cpu_and_feature_overrides_reach_the_backend():
    base = best_host_strategy(64)
    no_fma = Strategy("t", base.kernel, base.steps, LLVMOptions(cpu="haswell", features="+avx2,-fma"))
    code = compile_strategy(no_fma, get_target("znver3"), jit=False).code.assembly
    assert "vfmadd" not in code and "vmulps" in code and "%ymm" in code


# --- vector width: a strategy knob, and the width the peak is measured at ---------------------


@pytest.mark.parametrize("bits,register,fmas,legal", [(None, "zmm", 6 * 4, False), (512, "zmm", 6 * 4, False),
                                                      (256, "ymm", 12 * 4, False), (128, "xmm", 24 * 4, True)])
def test_vector_bits_sets_the_width_llvm_uses(bits, register, fmas, legal):
    """LLVM narrows 512-bit vectors itself (min-legal-vector-width); below 256 bits it needs `legalize`."""
    base = legal_strategy(6, 16, 256, "f32", ScalarLoads(), UnrollK(4)) if legal else best_host_strategy()
    s = dataclasses.replace(base, vector_bits=bits)
    compiled = compile_strategy(s, get_target("skylake-avx512"), jit=False)
    loop = asm.hot_loop(compiled.code.assembly, "ukernel")
    found = [i for i in loop if asm.is_fma(i)]
    assert len(found) == fmas and all(f"%{register}" in i.operands[-1] for i in found)
    assert compiled.vector_bits == {"zmm": 512, "ymm": 256, "xmm": 128}[register]


def test_legalized_nr_8_on_avx512_runs_on_ymm_and_the_peak_follows():
    s = legal_strategy(12, 8, 64, "f32", ScalarLoads(), UnrollK(2))
    compiled = compile_strategy(s, get_target("znver4"), jit=False)
    assert compiled.vector_bits == 256  # judged against the 256-bit peak, not the 512-bit one


def test_vector_bits_is_hashed_only_when_set():
    s = best_host_strategy()
    assert "vector_bits" not in s.to_dict() and dataclasses.replace(s, vector_bits=None).hash == s.hash
    wide = dataclasses.replace(s, vector_bits=256)
    assert wide.hash != s.hash and Strategy.from_dict(wide.to_dict()) == wide


def test_narrower_vectors_still_verify_on_this_host(host):
    for bits in host.widths:
        s = dataclasses.replace(strategy(4, 16, 32, "f32", ScalarLoads()), vector_bits=bits)
        assert verify(compile_strategy(s, host).code, s.kernel).correct, bits
