"""SVE's indexed FMA: `fmla z_acc.s, z_b.s, z_a.s[i]`, one A value taken from each 128-bit segment of a
register that holds four rows' A values replicated (LLVM folds the replication of a 128-bit load into
ld1rqw). The broadcast of one A value per row, which costs a vector-pipe instruction (`mov z.s, z.s[i]`)
per row and k-step on Neoverse V1/V2 and so caps an 8 x [8] kernel at two thirds of peak there, goes away.

Upstream MLIR lowers vector.fma on scalable vectors to a plain FMA of a broadcast; nothing in it emits
the indexed form (LLVM selects it only from its intrinsic `llvm.aarch64.sve.fmla.lane`), so this is a
Python rewrite of the 1-D code: every `fma(broadcast(extract(a, i)), b, acc)` with `a` a fixed vector of
A's row becomes fmla.lane on [4]-lane (or [2] for f64) pieces of b and acc.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects import llvm, ub, vector

from kernels_mlir.spec import DTYPES

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .plan import MIN_VECTOR_BITS, Plan, StepContext
from .step import PythonRewrite, register_step

_SUFFIX = {"f32": "nxv4f32", "f64": "nxv2f64"}


@register_step
@dataclass(frozen=True)
class IndexedFma(PythonRewrite):
    """Each FMA of a broadcast A lane becomes SVE's indexed FMA on a replicated 128-bit segment of A."""

    kind: ClassVar[str] = "indexed_fma"
    needs: ClassVar[frozenset[str]] = frozenset({"lowered"})
    not_after: ClassVar[frozenset[str]] = frozenset({"indexed_fma", "scalar_loads"})
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sve"})
    scalable_why: ClassVar[str] = "it rewrites SVE FMAs, which an SME kernel's outer products are not"

    def validate(self, plan: Plan) -> None:
        if plan.spec.scalable != "sve":
            raise StrategyError("scalable: indexed_fma rewrites SVE kernels' FMAs (scalable = \"sve\"); for a "
                                "fixed-width kernel LLVM selects NEON's fmla by element itself")

    def rewrite(self, kernel: ir.Operation, ctx: StepContext) -> str:
        dtype = ctx.spec.dtype
        lanes = MIN_VECTOR_BITS // DTYPES[dtype].bits
        piece = ir.VectorType.get([lanes], ir.Type.parse(dtype), scalable=[True])
        segments: dict[tuple[int, int], ir.Value] = {}
        count = 0
        for fma in q.ops_named(kernel, "vector.fma"):
            found = _broadcast_lane(fma)
            if found is None:
                continue
            a, index, b = found
            with ir.InsertionPoint(fma):
                key = (id(a.owner), index // lanes)
                if key not in segments:
                    segments[key] = _replicated_segment(a, index // lanes, lanes, piece, dtype)
                acc = fma.operands[2]
                total = ir.VectorType(acc.type).shape[0]
                result = acc
                for start in range(0, total, lanes):
                    acc_piece = vector.scalable_extract(piece, acc, start)
                    b_piece = vector.scalable_extract(piece, b, start)
                    i32 = ir.IntegerType.get_signless(32)
                    lane = llvm.ConstantOp(i32, ir.IntegerAttr.get(i32, index % lanes)).result
                    updated = llvm.call_intrinsic(piece, f"llvm.aarch64.sve.fmla.lane.{_SUFFIX[dtype]}",
                                                  [acc_piece, b_piece, segments[key], lane], [], [])
                    result = vector.scalable_insert(updated, result, start)
            fma.results[0].replace_all_uses_with(result)
            fma.erase()
            count += 1
        return f"{count} FMAs of a broadcast A lane -> fmla (indexed)"

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if not any(op.name == "llvm.call_intrinsic" and "fmla.lane" in ir.StringAttr(op.attributes["intrin"]).value
                   for op in q.walk(kernel)):
            raise StepFailed("indexed_fma: no FMA of a broadcast A lane was found to rewrite")


def _broadcast_lane(fma: ir.Operation) -> tuple[ir.Value, int, ir.Value] | None:
    """(a, i, b) when `fma` multiplies broadcast(extract(a, i)), `a` a fixed 1-D vector, by b."""
    for own, other in ((0, 1), (1, 0)):
        broadcast = fma.operands[own].owner
        if isinstance(broadcast, ir.Block) or broadcast.name != "vector.broadcast":
            continue
        extract = broadcast.operands[0].owner
        if isinstance(extract, ir.Block) or extract.name != "vector.extract":
            continue
        source = extract.operands[0]
        positions = ir.DenseI64ArrayAttr(extract.attributes["static_position"])
        if isinstance(source.type, ir.VectorType) and not ir.VectorType(source.type).scalable and len(positions) == 1:
            return source, positions[0], fma.operands[other]
    return None


def _replicated_segment(a: ir.Value, segment: int, lanes: int, piece: ir.Type, dtype: str) -> ir.Value:
    """A's lanes [segment * lanes, +lanes) in every 128-bit segment of a scalable register (dupq)."""
    fixed = ir.VectorType.get([lanes], ir.Type.parse(dtype))
    width = ir.VectorType(a.type).shape[0]
    if width % lanes:
        raise StepFailed(f"indexed_fma: A's row of {width} is not whole 128-bit segments")
    part = vector.extract_strided_slice(fixed, a, [segment * lanes], [lanes], [1])
    placed = vector.scalable_insert(part, ub.poison(piece), 0)
    i64 = ir.IntegerType.get_signless(64)
    zero = llvm.ConstantOp(i64, ir.IntegerAttr.get(i64, 0)).result
    return llvm.call_intrinsic(piece, f"llvm.aarch64.sve.dupq.lane.{_SUFFIX[dtype]}", [placed, zero], [], [])
