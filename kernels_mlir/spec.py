"""What a micro-kernel computes: its shape and element type, independent of how it is compiled."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from .names import BENCH, KERNEL
from .operands import Guarded, Operands
from .reference import (LDC_PADDING, draw, error_bound, pack_k_groups, reference, unpack_k_groups,
                        verification_bytes)

@dataclass(frozen=True)
class Element:
    """One scalar type of an operand: its MLIR spelling, NumPy type, C type (for the emulation
    driver) and how verification treats it."""

    mlir: str
    numpy: Any
    c_type: str
    bytes: int
    #: Integers are compared exactly; floats within a rounding-error bound.
    exact: bool = False
    #: For 8-bit integers: how the kernel widens it (extsi / extui), i.e. its signedness.
    signed: bool = True

    @property
    def bits(self) -> int:
        return 8 * self.bytes


ELEMENTS: dict[str, Element] = {e: Element(*row) for e, row in {
    "f32": ("f32", np.float32, "float", 4),
    "f64": ("f64", np.float64, "double", 8),
    "bf16": ("bf16", ml_dtypes.bfloat16, "unsigned short", 2),
    "s8": ("i8", np.int8, "signed char", 1, True, True),
    "u8": ("i8", np.uint8, "unsigned char", 1, True, False),
    "i32": ("i32", np.int32, "int", 4, True, True),
}.items()}


@dataclass(frozen=True)
class DType:
    """A kernel's element types, everything the harness needs to know about them in one place.

    `a` and `b` are the input panels' elements, `acc` is C's (the accumulator). Low-precision
    dtypes pack groups of consecutive k values of one row or column together, as the
    dot-product instructions read them (VNNI pairs for bf16, quads for int8).
    """

    name: str
    a: Element
    b: Element
    acc: Element
    #: The k groupings its panels can have, the default first (what a kernel's k_group may be).
    groups: tuple[int, ...] = (1,)
    #: How results are counted: "flop" for floating point, "op" (multiply-adds x 2) for integers.
    unit: str = "flop"

    @property
    def numpy(self) -> Any:
        return self.a.numpy

    @property
    def bytes(self) -> int:
        """Bytes of one input element (what packing buffers and bandwidth are made of)."""
        return self.a.bytes

    @property
    def bits(self) -> int:
        """Bits of one accumulator lane: what sets lanes per vector register."""
        return self.acc.bits

    @property
    def rate(self) -> str:
        """The rate's unit: GFLOP/s, or GOP/s for integers (both count a multiply-add as 2)."""
        return "GOP/s" if self.unit == "op" else "GFLOP/s"

    def group_of(self, k_group: int | None) -> int:
        """The k grouping of a kernel that asks for `k_group` (None: the default); SpecError if it cannot."""
        if k_group is not None and k_group not in self.groups:
            *others, last = map(str, self.groups)
            raise SpecError(f"k_group: {self.name} panels group k by {', '.join(others)} or {last} (1: k-major, "
                            f"widened in registers), got {k_group!r}")
        return k_group or self.groups[0]



def _dtype(name: str, a: str, b: str, acc: str, groups: tuple[int, ...] = (1,), unit: str = "flop") -> DType:
    return DType(name, ELEMENTS[a], ELEMENTS[b], ELEMENTS[acc], groups, unit)


#: Element types the payload builders support: f32/f64 (plain FMA kernels); bf16 inputs with f32
#: accumulation, k in pairs (as vdpbf16ps reads them) or fours (bfmmla); u8 x s8 with i32
#: accumulation, k in fours (as VNNI's vpdpbusd computes it); s8 x s8, k in eights (Arm's smmla
#: reads 2x8 operands) or fours (sdot, vpdpbssd). Every low-precision dtype may also keep k-major
#: panels (k_group 1): inputs widened in registers, as SME's outer-product fusion reads them.
DTYPES: dict[str, DType] = {d.name: d for d in (
    _dtype("f32", "f32", "f32", "f32"),
    _dtype("f64", "f64", "f64", "f64"),
    _dtype("bf16", "bf16", "bf16", "f32", (2, 4, 1)),
    _dtype("u8s8", "u8", "s8", "i32", (4, 1), "op"),
    _dtype("s8s8", "s8", "s8", "i32", (8, 4, 1), "op"),
)}

#: Upper bounds that catch typos (a kc of 2560000) before they reach the compiler.
MAX_MR, MAX_NR, MAX_KC = 64, 256, 1 << 16

#: Scalable kernels (Arm): "sve" scales the columns with the vector length (C is mr x [nr]: nr lanes per
#: 128 bits), "sme" both dimensions ([mr] x [nr], held in ZA tiles). One binary serves every vector length.
SCALABLE = ("sve", "sme")
#: Element types each scalable kind is built for: SVE FMAs; SME outer products (fmopa on f32, bfmopa
#: widening bf16 pairs, smopa 4-way on s8 x s8), whose fusion upstream reads k-major panels (k_group 1).
SCALABLE_DTYPES = {"sve": ("f32", "f64"), "sme": ("f32", "bf16", "s8s8")}
#: The vector lengths SVE and SME allow (bits): powers of two from 128 to 2048.
SCALABLE_BITS = tuple(128 << i for i in range(5))


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
    #: How many consecutive k values the panels pack together (low-precision dtypes); None: the
    #: dtype's default. Left out of to_dict when None, so f32 strategies keep their hashes.
    k_group: int | None = None
    #: None, or one of SCALABLE: mr and/or nr then count lanes per 128 bits of vector (MLIR's [n]), and the
    #: shape a call computes depends on the vector length it runs at (at_vscale). Left out of to_dict when None.
    scalable: str | None = None

    def __post_init__(self) -> None:
        for name, bound in (("mr", MAX_MR), ("nr", MAX_NR), ("kc", MAX_KC)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{name}: must be an integer, got {value!r}")
            if not 1 <= value <= bound:
                raise SpecError(f"{name}: must be between 1 and {bound}, got {value}")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype: must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.scalable is not None:
            self._check_scalable()
        group = self.group
        if self.kc % group:
            raise SpecError(f"kc: must be a multiple of {group} for {self.dtype} (its panels pack k in groups "
                            f"of {group}), got {self.kc}")

    def _check_scalable(self) -> None:
        if self.scalable not in SCALABLE:
            raise SpecError(f"scalable: must be one of {list(SCALABLE)}, got {self.scalable!r}")
        dtypes = SCALABLE_DTYPES[self.scalable]
        if self.dtype not in dtypes:
            raise SpecError(f"dtype: {self.scalable} kernels are built for {', '.join(dtypes)}, got {self.dtype!r}")
        if self.k_group is not None:
            raise SpecError(f"k_group: {self.scalable} kernels read k-major panels (the outer-product fusion "
                            f"interleaves k in registers), got {self.k_group}")
        lanes = 128 // self.element.bits
        scaled = (("mr", self.mr),) * (self.scalable == "sme") + (("nr", self.nr),)
        for name, value in scaled:
            if value % lanes:
                raise SpecError(f"{name}: a {self.scalable} kernel's {name} counts {self.dtype} lanes per 128 "
                                f"bits of vector, so it must be a multiple of {lanes}, got {value}")

    @property
    def group(self) -> int:
        """k values packed together in a panel row (1 for f32/f64, and for scalable kernels' k-major panels)."""
        if self.scalable is not None:
            return 1
        return DTYPES[self.dtype].group_of(self.k_group)

    @property
    def outer_product_ways(self) -> int:
        """k values one SME outer product consumes: 1 (fmopa f32), 2 (bfmopa), 4 (smopa on 8-bit), as
        many inputs as fit in one accumulator element."""
        return self.element.acc.bits // self.element.a.bits

    @property
    def k_step(self) -> int:
        """What a packed panel's depth must be a multiple of (zero-padded): the k group of grouped panels,
        or the k values one SME outer product takes from k-major panels."""
        return self.outer_product_ways if self.scalable == "sme" else self.group

    def at_length(self, bits: int | None) -> "KernelSpec":
        """The kernel as one call computes it with `bits`-long vectors (None: as it is, fixed-width)."""
        return self if bits is None else self.at_vscale(bits // 128)

    def at_vscale(self, vscale: int) -> "KernelSpec":
        """The fixed shape one call computes when vectors are vscale x 128 bits (SVE's VL, or SME's
        streaming VL): what operands, references and the emulation driver are sized by."""
        if self.scalable is None:
            return self
        mr = self.mr * vscale if self.scalable == "sme" else self.mr
        return KernelSpec(mr, self.nr * vscale, self.kc, self.dtype, None if self.element.groups == (1,) else 1)

    @property
    def element(self) -> DType:
        return DTYPES[self.dtype]

    @property
    def np_dtype(self) -> type:
        return DTYPES[self.dtype].numpy

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype].bytes

    @property
    def flops(self) -> int:
        """Operations of one call, a multiply and an add per term (flop, or integer ops for int8)."""
        return 2 * self.mr * self.nr * self.kc

    @property
    def bytes_needed(self) -> int:
        """Memory one measurement takes (a few kilobytes): panels, C with its padding, their snapshots and
        the check's float64 arrays."""
        inputs, outputs = self.kc * (self.mr + self.nr), self.mr * (self.nr + LDC_PADDING)
        return 2 * (inputs + outputs) * 8 + verification_bytes(inputs, outputs)

    def fields(self) -> dict:
        """Every field, as the flat forms of GEMMs and convolutions embed a kernel (k_group always, for
        their hashes' sake; scalable only when set)."""
        data = dataclasses.asdict(self)
        if data["scalable"] is None:
            del data["scalable"]
        return data

    @classmethod
    def from_fields(cls, fields: dict) -> "KernelSpec":
        """The kernel's fields taken out of a flat form (they are removed from `fields`)."""
        return cls(*(fields.pop(k) for k in ("mr", "nr", "kc", "dtype")), fields.pop("k_group", None),
                   fields.pop("scalable", None))

    def to_dict(self) -> dict:
        data = {"mr": self.mr, "nr": self.nr, "kc": self.kc, "dtype": self.dtype}
        if self.k_group is not None:
            data["k_group"] = self.k_group
        if self.scalable is not None:
            data["scalable"] = self.scalable
        return data

    # --- the Problem protocol (kernels_mlir.problem) ---
    kind = "microkernel"
    entry, bench = KERNEL, BENCH

    def workload(self) -> dict:
        return self.to_dict()

    def operands(self, seed: int) -> Operands:
        """Packed panels A (kc x mr), B (kc x nr) and C (mr x nr) inside rows of ldc = nr + LDC_PADDING.

        A low-precision dtype's panels hold k in groups: A is stored (kc/g) x (mr*g) (see pack_k_groups).
        """
        rng = np.random.default_rng(seed)
        d = self.element
        a, b = draw(rng, d.a, self.kc, self.mr), draw(rng, d.b, self.kc, self.nr)
        c = draw(rng, d.acc, self.mr, self.nr + LDC_PADDING)
        a, b = pack_k_groups(a, self.group), pack_k_groups(b, self.group)
        return Operands({"A": Guarded.around(a), "B": Guarded.around(b), "C": Guarded.around(c, self.nr)})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        d = self.element
        a, b = unpack_k_groups(ops.a, self.group), unpack_k_groups(ops.b, self.group)
        return reference(a, b, ops.c, d.acc.exact), error_bound(a, b, ops.c, d.acc)
