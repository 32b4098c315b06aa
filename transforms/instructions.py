"""Dot-product instructions: what each computes, what it needs, and how a kernel reaches it.

One row per instruction. The per-core throughput of each (how many issue per cycle) is a fact
about a core, so it lives in the target table (pipelines.targets); this table holds the ISA facts.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import StrategyError


@dataclass(frozen=True)
class Instruction:
    """A dot-product instruction as a micro-kernel uses it.

    Every instruction multiplies groups of `k_group` consecutive k values and adds them into 32-bit
    lanes. `tile` is the (rows, columns) of C one instruction updates: (1, lanes) for the
    broadcast forms (vdpbf16ps, vpdpbusd, sdot: a row of A broadcast against `lanes` columns of B),
    (2, 2) for the matrix forms (smmla, bfmmla: a 2x8 by 8x2 product).
    """

    name: str
    dtype: str
    k_group: int
    arch: str
    #: LLVM features a target must have (besides its vector ISA).
    features: tuple[str, ...]
    #: Upstream transform pattern that produces it ("" when a Python rewrite emits the intrinsic).
    pattern: str = ""
    #: The MLIR op the pattern produces (what the peak kernel is built from, and what checks look for).
    op: str = ""
    #: LLVM intrinsic for the rewrite, with "{bits}" for the vector width ("" when `pattern` is used).
    intrinsic: str = ""
    #: For the matrix forms: the C tile of one instruction; None for the broadcast forms (1 x lanes).
    matrix_tile: tuple[int, int] | None = None
    #: Vector widths it exists at.
    widths: tuple[int, ...] = (128,)
    #: Whether its pattern matches the narrow operands themselves (the widening ops folded into the
    #: contraction first, by fold_arith_extension) rather than the widening ops.
    narrow_operands: bool = True

    def tile(self, bits: int) -> tuple[int, int]:
        """(rows, columns) of C one instruction updates at `bits`-wide vectors."""
        return self.matrix_tile or (1, bits // 32)

    def macs(self, bits: int) -> int:
        """Multiply-adds one instruction performs at `bits`: C elements updated x k_group."""
        rows, cols = self.tile(bits)
        return rows * cols * self.k_group

    def intrinsic_at(self, bits: int) -> str:
        return self.intrinsic.format(bits=bits)

    def input_count(self, bits: int) -> int:
        """8-bit or 16-bit input elements in one operand register of `bits`."""
        element_bits = 16 if self.dtype == "bf16" else 8
        return bits // element_bits

    def check_width(self, bits: int) -> None:
        if bits not in self.widths:
            raise StrategyError(f"instruction: {self.name} exists at {'/'.join(map(str, self.widths))} bits, "
                                f"the strategy's vectors are {bits} bits")


_X86_PACKED = "transform.apply_patterns.x86vector.vector_contract_to_packed_type_dot_product"

#: By name, which is also the assembly mnemonic (how analyses of generated code recognise them).
INSTRUCTIONS: dict[str, Instruction] = {i.name: i for i in (
    # AVX512-BF16: pairs of bf16 products summed into f32 lanes.
    Instruction("vdpbf16ps", "bf16", 2, "x86_64", ("avx512bf16",), pattern=_X86_PACKED, op="x86vector.avx512.dot",
                widths=(256, 512)),
    # AVX512-VNNI: quads of u8 x s8 products summed into i32 lanes. MLIR 22 has no pattern for it
    # (its x86vector int8 pattern emits AVX-VNNI-INT8's vpdpbssd), so a rewrite emits the intrinsic.
    Instruction("vpdpbusd", "u8s8", 4, "x86_64", ("avx512vnni",),
                intrinsic="llvm.x86.avx512.vpdpbusd.{bits}", widths=(256, 512)),
    # AVX-VNNI-INT8 (Sierra Forest, Arrow Lake, Granite Rapids-D): quads of s8 x s8, VEX only.
    Instruction("vpdpbssd", "s8s8", 4, "x86_64", ("avxvnniint8",), pattern=_X86_PACKED, op="x86vector.avx.dot.i8",
                widths=(256,)),
    # Armv8.2 DotProd: quads of s8 x s8 per 32-bit lane.
    Instruction("sdot", "s8s8", 4, "aarch64", ("dotprod",), intrinsic="llvm.aarch64.neon.sdot.v4i32.v16i8"),
    # Armv8.6 I8MM: a 2x8 by 8x2 s8 product into a 2x2 i32 tile.
    Instruction("smmla", "s8s8", 8, "aarch64", ("i8mm",),
                pattern="transform.apply_patterns.arm_neon.vector_contract_to_i8mm", op="arm_neon.intr.smmla",
                matrix_tile=(2, 2),
                narrow_operands=False),
    # Armv8.6 BF16: a 2x4 by 4x2 bf16 product into a 2x2 f32 tile.
    Instruction("bfmmla", "bf16", 4, "aarch64", ("bf16",),
                pattern="transform.apply_patterns.arm_neon.vector_contract_to_bfmmla", op="arm_neon.intr.bfmmla",
                matrix_tile=(2, 2)),
)}


def instruction(name: str) -> Instruction:
    if name not in INSTRUCTIONS:
        raise StrategyError(f"instruction: must be one of {sorted(INSTRUCTIONS)}, got {name!r}")
    return INSTRUCTIONS[name]
