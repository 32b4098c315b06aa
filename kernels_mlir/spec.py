"""What a micro-kernel computes: its shape and element type, independent of how it is compiled."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .names import BENCH, KERNEL
from .operands import Guarded, Operands
from .reference import LDC_PADDING, error_bound, reference, uniform

@dataclass(frozen=True)
class DType:
    """An element type, everything the harness needs to know about it in one place. Its name is
    also its MLIR spelling (`ir.Type.parse(name)`)."""

    name: str
    numpy: type
    bytes: int
    #: The C type of the emulation driver's operands.
    c_type: str

    @property
    def bits(self) -> int:
        return 8 * self.bytes


#: Element types the payload builders support.
DTYPES: dict[str, DType] = {d.name: d for d in (DType("f32", np.float32, 4, "float"),
                                                 DType("f64", np.float64, 8, "double"))}

#: Upper bounds that catch typos (a kc of 2560000) before they reach the compiler.
MAX_MR, MAX_NR, MAX_KC = 64, 256, 1 << 16


class SpecError(ValueError):
    """An impossible or absurd kernel specification; the message names the field."""


@dataclass(frozen=True)
class KernelSpec:
    """C[mr x nr] += Ap[kc x mr]^T . Bp[kc x nr], with A and B packed k-major (BLIS layout).

    C is row-major with a run-time leading dimension (ldc >= nr), so the same kernel
    serves a packed GEMM where C is a sub-block of a larger matrix.
    """

    mr: int
    nr: int
    kc: int
    dtype: str = "f32"

    def __post_init__(self) -> None:
        for name, bound in (("mr", MAX_MR), ("nr", MAX_NR), ("kc", MAX_KC)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{name}: must be an integer, got {value!r}")
            if not 1 <= value <= bound:
                raise SpecError(f"{name}: must be between 1 and {bound}, got {value}")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype: must be one of {sorted(DTYPES)}, got {self.dtype!r}")

    @property
    def np_dtype(self) -> type:
        return DTYPES[self.dtype].numpy

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype].bytes

    @property
    def flops(self) -> int:
        """Floating-point operations of one call (a multiply and an add per term)."""
        return 2 * self.mr * self.nr * self.kc

    def to_dict(self) -> dict:
        return {"mr": self.mr, "nr": self.nr, "kc": self.kc, "dtype": self.dtype}

    # --- the Problem protocol (kernels_mlir.problem) ---
    kind = "microkernel"
    entry, bench = KERNEL, BENCH

    def workload(self) -> dict:
        return self.to_dict()

    def operands(self, seed: int) -> Operands:
        """Packed panels A (kc x mr), B (kc x nr) and C (mr x nr) inside rows of ldc = nr + LDC_PADDING."""
        rng = np.random.default_rng(seed)
        a, b = uniform(rng, self.np_dtype, self.kc, self.mr), uniform(rng, self.np_dtype, self.kc, self.nr)
        c = uniform(rng, self.np_dtype, self.mr, self.nr + LDC_PADDING)
        return Operands({"A": Guarded.around(a), "B": Guarded.around(b), "C": Guarded.around(c, self.nr)})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        return reference(ops.a, ops.b, ops.c), error_bound(ops.a, ops.b, ops.c)
