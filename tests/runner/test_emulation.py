"""AArch64 kernels verified under qemu-aarch64. The tools are installed by `make test`: no skipping."""
import pytest

from kernels_mlir.spec import KernelSpec
from pipelines.codegen import generate
from pipelines.compile import compile_strategy
from pipelines.targets import get_target
from runner.emulation import qemu as emulation
from runner.emulation.qemu import EmulatedFailure, EmulationUnavailable, missing_tools, require_tools
from runner.measure.verify import verify_emulated
from transforms.llvm_options import LLVMOptions
from transforms.steps import Prefetch, Schedule, UnrollK

from ..conftest import legal_strategy, sabotaged, strategy

pytestmark = pytest.mark.emulation


def test_cross_tools_are_installed():
    assert missing_tools() == [], "run `make system-packages` (the test target does)"


@pytest.mark.parametrize("target, s", [
    ("neoverse-n1", legal_strategy(12, 8, 256, "f32", UnrollK(2), Schedule("interleave", 2), Prefetch(16))),
    ("neoverse-v2", strategy(8, 8, 64, "f32", UnrollK(32))),
    ("cortex-a76", strategy(3, 5, 17, "f64")),
    ("apple-m1", legal_strategy(4, 16, 32, "f64", UnrollK("total"))),
    ("neoverse-n1", strategy(1, 1, 1, "f32")),
])
def test_qemu_verified_aarch64_kernel_matches_numpy(target, s):
    code = compile_strategy(s, get_target(target), jit=False).code
    assert "fmla" in code.assembly or "fmadd" in code.assembly
    check = verify_emulated(code, s.kernel, seed=7)
    assert check.correct, check.message
    assert check.max_abs_error > 0 or s.kernel.kc == 1  # the kernel did compute (inputs are random)


def test_a_wrong_aarch64_kernel_is_caught():
    s = sabotaged(8, 8, 32)
    check = verify_emulated(compile_strategy(s, get_target("neoverse-n1"), jit=False).code, s.kernel)
    assert not check.correct and "expected" in check.message


def _object(body: str) -> bytes:
    """An AArch64 object whose kernel entry point runs `body` (LLVM IR)."""
    ir = f"define void @_mlir_ciface_ukernel(ptr %a, ptr %b, ptr %c) {{\n{body}\n}}"
    return generate(ir, get_target("neoverse-n1"), LLVMOptions(opt="none"), jit=False).object_code


@pytest.mark.parametrize("body, message", [
    ("store volatile i32 0, ptr null\n  ret void", "signal 11"),
    ("br label %spin\nspin:\n  br label %spin", "timed out"),
])
def test_crashing_and_hanging_kernels_are_emulated_failures(monkeypatch, body, message):
    monkeypatch.setattr(emulation, "RUN_TIMEOUT_SECONDS", 2)
    spec = KernelSpec(4, 4, 8)
    with pytest.raises(EmulatedFailure, match=message):
        emulation.run_emulated(_object(body), spec, spec.operands(0))


def test_unlinkable_object_is_an_emulated_failure():
    spec = KernelSpec(4, 4, 8)
    with pytest.raises(EmulatedFailure, match="linking"):
        emulation.run_emulated(b"not an object file", spec, spec.operands(0))


def test_missing_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(emulation.shutil, "which", lambda tool: None)
    with pytest.raises(EmulationUnavailable, match="qemu-user gcc-aarch64-linux-gnu"):
        require_tools()


#: Every convolution route in both layouts where it applies, at two threads (each share called in turn); NHWC
#: cases with FHWC filters, filters packed once, and a depthwise channel multiplier of 2.
_CONV_CASES = [
    ("im2col", dict(h=7, w=9, c=5, k=6, r=3, s=3, stride=2, pad=1), "nhwc", dict(filters="fhwc", weights="packed")),
    ("im2col_chunked", dict(h=7, w=9, c=5, k=6, r=3, s=3, pad=1, groups=1), "nchw", {}),
    ("igemm", dict(h=7, w=9, c=4, k=6, r=3, s=3, pad=1, dilation=2, groups=2), "nchw", {}),
    ("igemm", dict(h=6, w=5, c=5, k=7, r=3, s=3, stride=2, pad=1), "nhwc", dict(weights="packed")),
    ("pointwise", dict(h=5, w=5, c=4, k=6, r=1, s=1), "nchw", {}),
    ("direct", dict(h=7, w=9, c=6, k=10, r=3, s=3, pad=1, groups=2), "nhwc", dict(filters="fhwc", weights="packed")),
    ("direct", dict(h=7, w=9, c=6, k=10, r=3, s=3, stride=2, pad=1, groups=2), "nchw", {}),
    ("depthwise", dict(h=7, w=9, c=12, k=24, r=3, s=3, pad=1, groups=12), "nhwc", dict(filters="fhwc")),
    ("depthwise", dict(h=7, w=19, c=3, k=3, r=3, s=3, stride=2, pad=1, groups=3), "nchw", {}),
]


@pytest.mark.parametrize("target", ["neoverse-v2", "neoverse-n1"])
@pytest.mark.parametrize("route, sizes, layout, how", _CONV_CASES,
                         ids=[f"{r}-{lay}-s{sizes.get('stride', 1)}{''.join('-' + v for v in how.values())}"
                              for r, sizes, lay, how in _CONV_CASES])
def test_every_convolution_route_is_verified_under_qemu(target, route, sizes, layout, how):
    from kernels_mlir.conv import ConvShape, ConvSpec
    from runner.measure.lifecycle import Candidate, build

    s = legal_strategy(8, 8, 64)
    shape = ConvShape(1, **sizes, layout=layout, filters=how.get("filters"))
    spec = ConvSpec(shape, route, s.kernel, mc=16, nc=16, threads=2, weights=how.get("weights", "rows"),
                    pack_bytes=5 * shape.taps * 4 if route == "im2col_chunked" else None)
    code = build(Candidate(s, spec, get_target(target)), jit=False).code
    assert "fmla" in code.assembly
    check = verify_emulated(code, spec, seed=5)
    assert check.correct, check.message


def test_a_wrong_convolution_is_caught_under_qemu():
    from kernels_mlir.conv import ConvShape, ConvSpec
    from runner.measure.lifecycle import Candidate, build

    s = sabotaged(8, 8, 64)
    spec = ConvSpec(ConvShape(1, 6, 6, 4, 8, 3, 3, pad=1), "igemm", s.kernel, mc=16, nc=16)
    check = verify_emulated(build(Candidate(s, spec, get_target("neoverse-n1")), jit=False).code, spec)
    assert not check.correct and "expected" in check.message


@pytest.mark.parametrize("strategy_name", ["smmla-8x8", "bfmmla-8x8"])
@pytest.mark.parametrize("route, layout", [("im2col_chunked", "nchw"), ("igemm", "nhwc")])
def test_low_precision_convolutions_run_on_arm_dot_products_under_qemu(strategy_name, route, layout):
    """s8 x s8 (smmla) and bf16 (bfmmla) convolutions: the column matrix stays row-major (k grouped in
    pairs or eights) and the GEMM packs it; exact for integers."""
    from pathlib import Path

    from kernels_mlir.conv import ConvShape, ConvSpec
    from runner.config.experiment import load
    from runner.measure.lifecycle import Candidate, build

    (s,) = [s for s in load(Path("experiments/lowp_arm.toml")).strategies if s.name == strategy_name]
    spec = ConvSpec(ConvShape(1, 7, 5, 6, 8, 3, 3, pad=1, dtype=s.kernel.dtype, layout=layout), route, s.kernel,
                    mc=8, nc=16, pack_bytes=3000 if route == "im2col_chunked" else None)
    assert not spec.panels
    code = build(Candidate(s, spec, get_target("neoverse-v2")), jit=False).code
    check = verify_emulated(code, spec, seed=3)
    assert check.correct, check.message
    assert s.instruction in code.assembly
