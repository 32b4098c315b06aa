"""LLVM runs in a child: its abort is a CodegenError here, and the next compilation still works."""
import pytest

from pipelines.codegen import CodegenError, generate
from pipelines.targets import get_target
from transforms.llvm_options import LLVMOptions

#: vpdpbusd needs AVX512-VNNI: LLVM aborts ("LLVM ERROR: ...") when asked to select it for Zen 3.
VNNI_IR = """
declare <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>, <16 x i32>, <16 x i32>)
define <16 x i32> @f(<16 x i32> %a, <16 x i32> %b, <16 x i32> %c) {
  %r = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %a, <16 x i32> %b, <16 x i32> %c)
  ret <16 x i32> %r
}"""


@pytest.mark.parametrize("options", [LLVMOptions(), LLVMOptions(machine_scheduler=False)],
                         ids=["persistent child", "fresh child for backend flags"])
def test_an_llvm_abort_is_a_codegen_error_and_the_next_compile_works(options):
    with pytest.raises(CodegenError, match=r"LLVM aborted code generation .*died with status -6\): LLVM ERROR: "):
        generate(VNNI_IR, get_target("znver3"), options, jit=False)
    assert "vpdpbusd" in generate(VNNI_IR, get_target("znver4"), options, jit=False).assembly


def test_a_failure_llvm_reports_is_its_own_message_not_an_abort():
    with pytest.raises(CodegenError, match="LLVM parse failed"):
        generate("define i32 @f( {", get_target("znver3"), LLVMOptions(), jit=False)
