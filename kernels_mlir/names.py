"""Symbol names shared by the payload builders and whoever calls the compiled code."""

KERNEL = "ukernel"
BENCH = "ukl_bench"
PEAK = "ukl_fma_peak"
GEMM = "ukl_gemm"
GEMM_BENCH = "ukl_gemm_bench"


def kernel_symbol(kc: int) -> str:
    """A micro-kernel of depth kc as a driver (a GEMM, a convolution route) links and calls it."""
    return f"{KERNEL}_k{kc}"


def is_microkernel(symbol: str) -> bool:
    return symbol == KERNEL or symbol.startswith(f"{KERNEL}_k")


def c_interface(symbol: str) -> str:
    """Name of the C-ABI wrapper MLIR emits for a function marked `llvm.emit_c_interface`."""
    return f"_mlir_ciface_{symbol}"
