"""Steps that take a low-precision kernel to dot-product instructions (vdpbf16ps, vpdpbusd, smmla, ...).

`tile_registers` cuts the contraction into the pieces one instruction computes (upstream vector
unrolling only splits 3-D contractions; a grouped kernel's is 4-D), `dot_product` rewrites every
piece into the instruction: through the upstream x86vector / arm_neon patterns where MLIR 22 has
one, else through a Python rewrite that emits the LLVM intrinsic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects import arith, llvm, memref, vector
from mlir.dialects.transform import loop, structured
from mlir.dialects.transform import memref as tmemref
from mlir.dialects.transform import vector as tvec

from . import ir_query as q
from .errors import StepFailed, StrategyError
from .instructions import INSTRUCTIONS, Instruction, instruction
from .plan import Plan, StepContext
from .script import apply_patterns, canonicalize, match, run_script
from .step import Step, mark_lowered, register_step


@register_step
@dataclass(frozen=True)
class TileRegisters(Step):
    """Tile the contraction inside the k loop into rows x cols pieces and unroll them completely.

    Each piece becomes its own small contraction after `vectorize`, reading its own C block: after
    `hoist_accumulators` every piece's accumulator is a register carried by the k loop, in the
    layout the instruction produces (a 2x2 tile for smmla), so no shuffles run inside the loop.
    """

    kind: ClassVar[str] = "tile_registers"
    scalable_kinds: ClassVar[frozenset[str]] = frozenset()
    scalable_why: ClassVar[str] = ("it cuts a static register tile; a scalable kernel's tile is sized at run time")
    needs: ClassVar[frozenset[str]] = frozenset({"linalg", "k_loop"})
    adds: ClassVar[frozenset[str]] = frozenset({"register_tiles"})
    not_after: ClassVar[frozenset[str]] = frozenset({"tile_registers"})
    rows: int = 1
    cols: int = 16

    def validate(self, plan: Plan) -> None:
        for name, size, extent in (("rows", self.rows, plan.spec.mr), ("cols", self.cols, plan.spec.nr)):
            if size < 1 or extent % size:
                raise StrategyError(f"{name}: must be a positive divisor of {'mr' if name == 'rows' else 'nr'}="
                                    f"{extent}, got {size}")

    def after(self, plan: Plan) -> Plan:
        return super().after(plan).with_(register_tile=(self.rows, self.cols))

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        trips = (ctx.spec.mr // self.rows, ctx.spec.nr // self.cols)
        rank = 4 if ctx.spec.group > 1 else 3

        def emit(kernel: ir.Value) -> None:
            sizes = [self.rows, self.cols] + [0] * (rank - 2)
            tiled = structured.TileUsingForOp(match(kernel, "linalg.generic"), sizes=sizes)
            # Innermost first, so the outer loop's body is a single block when it is unrolled.
            for handle, count in reversed(list(zip(tiled.loops, trips))):
                if count > 1:
                    loop.LoopUnrollOp(handle, factor=count)
            apply_patterns(kernel, canonicalize)

        script = run_script(module, emit)
        self.check(q.kernel_function(module), ctx)
        return script

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        loops = q.ops_named(kernel, "scf.for")
        if len(loops) > 1:  # (a k loop of one iteration is folded away)
            raise StepFailed(f"tile_registers: expected the k loop alone, found {len(loops)} loops")
        pieces = q.ops_named(kernel, "linalg.generic")
        if len(pieces) != (ctx.spec.mr // self.rows) * (ctx.spec.nr // self.cols):
            raise StepFailed(f"tile_registers: {len(pieces)} pieces, expected "
                             f"{(ctx.spec.mr // self.rows) * (ctx.spec.nr // self.cols)}")


@register_step
@dataclass(frozen=True)
class FoldUnitDims(Step):
    """Drop the contraction's unit dims (upstream fold_unit_extent_dims_via_slices).

    A k-step of one group leaves the (ko, v) reduction with ko = 1: folding it gives the plain
    (m, k) x (n, k) contraction the arm_neon matrix patterns match. The x86 patterns match the
    4-D form, so the step is the strategy's to choose (dot_product checks it).
    """

    kind: ClassVar[str] = "fold_unit_dims"
    needs: ClassVar[frozenset[str]] = frozenset({"linalg"})
    adds: ClassVar[frozenset[str]] = frozenset({"unit_dims_folded"})
    not_after: ClassVar[frozenset[str]] = frozenset({"fold_unit_dims"})

    def emit(self, kernel: ir.Value, ctx: StepContext) -> None:
        apply_patterns(kernel, structured.ApplyFoldUnitExtentDimsViaSlicesPatternsOp, canonicalize)


@register_step
@dataclass(frozen=True)
class DotProduct(Step):
    """Lower every contraction piece to one dot-product instruction (a strategy chooses which)."""

    kind: ClassVar[str] = "dot_product"
    needs: ClassVar[frozenset[str]] = frozenset({"contract"})
    removes: ClassVar[frozenset[str]] = frozenset({"contract"})
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"instruction": tuple(INSTRUCTIONS)}
    instruction: str = "vdpbf16ps"

    @property
    def spec(self) -> Instruction:
        return instruction(self.instruction)

    def validate(self, plan: Plan) -> None:
        inst, kernel = self.spec, plan.spec
        if inst.dtype != kernel.dtype:
            raise StrategyError(f"instruction: {inst.name} computes {inst.dtype}, the kernel is {kernel.dtype}")
        if inst.k_group != kernel.group:
            raise StrategyError(f"instruction: {inst.name} reads k in groups of {inst.k_group}, the kernel's "
                                f"panels group {kernel.group} (set the kernel's k_group = {inst.k_group})")
        folded = "unit_dims_folded" in plan.facts
        if inst.matrix_tile and not folded:
            raise StrategyError(f"instruction: {inst.name}'s pattern matches a 3-D (m, k) x (n, k) contraction: "
                                "needs 'fold_unit_dims' before 'vectorize'")
        if inst.pattern and not inst.matrix_tile and folded:
            raise StrategyError(f"instruction: {inst.name}'s pattern matches the 4-D (i, j, ko, v) contraction: "
                                "remove 'fold_unit_dims'")
        if plan.bits is not None:
            inst.check_width(plan.bits)
            rows, cols = inst.tile(plan.bits)
            if plan.register_tile != (rows, cols):
                raise StrategyError(f"instruction: {inst.name} at {plan.bits} bits updates a {rows}x{cols} C tile: "
                                    f"needs 'tile_registers' with rows = {rows}, cols = {cols} before 'vectorize'")

    def after(self, plan: Plan) -> Plan:
        return mark_lowered(super().after(plan))

    def apply(self, module: ir.Module, ctx: StepContext) -> str:
        inst = self.spec

        def emit(kernel: ir.Value) -> None:
            apply_patterns(kernel, canonicalize, tmemref.ApplyFoldMemrefAliasOpsPatternsOp)
            if inst.pattern:
                if inst.narrow_operands:
                    apply_patterns(kernel, tvec.ApplyFoldArithExtensionPatternsOp)
                apply_patterns(kernel, lambda: ir.Operation.create(inst.pattern), canonicalize)

        script = run_script(module, emit)
        with module.context, ir.Location.unknown():
            kernel = q.kernel_function(module)
            summary = ""
            if inst.intrinsic:
                summary = f"\n// python rewrite: {emit_broadcast_dot(kernel, inst, ctx.bits)} pieces -> {inst.name}"
            flattened = flatten_contiguous_reads(kernel)
            loops = q.ops_named(kernel, "scf.for")
            carried = flatten_carried_vectors(loops[0]) if len(loops) == 1 else 0
        self.check(q.kernel_function(module), ctx)
        return (f"{script}{summary}\n// python rewrite: {flattened} reads flattened to 1-D, "
                f"{carried} accumulators carried as 1-D vectors")

    def check(self, kernel: ir.Operation, ctx: StepContext) -> None:
        if q.ops_named(kernel, "vector.contract"):
            raise StepFailed(f"dot_product: a vector.contract remains: the pieces do not have the shape "
                             f"{self.instruction} computes")
        if not any(is_instruction(op, self.spec, ctx.bits) for op in q.walk(single_loop(kernel))):
            raise StepFailed(f"dot_product: no {self.instruction} inside the k loop")


def is_instruction(op: ir.Operation, inst: Instruction, bits: int) -> bool:
    """Whether `op` is `inst` (its MLIR op, or the call of its intrinsic)."""
    if inst.op:
        return op.name == inst.op
    return op.name == "llvm.call_intrinsic" and \
        ir.StringAttr(op.attributes["intrin"]).value == inst.intrinsic_at(bits)


def single_loop(kernel: ir.Operation) -> ir.Operation:
    loops = q.ops_named(kernel, "scf.for")
    return loops[0] if len(loops) == 1 else kernel


def _elements(vector_type: ir.Type) -> int:
    return math.prod(ir.VectorType(vector_type).shape)


def _narrow(value: ir.Value, unsigned: bool) -> ir.Value | None:
    """The 8-bit vector an extsi (or extui when `unsigned`) widened into `value`, else None."""
    owner = value.owner
    if isinstance(owner, ir.Block) or owner.operation.name != ("arith.extui" if unsigned else "arith.extsi"):
        return None
    return owner.operation.operands[0]


def emit_broadcast_dot(kernel: ir.Operation, inst: Instruction, bits: int) -> int:
    """Rewrite every 1 x lanes x group integer contraction piece into `inst`'s intrinsic.

    The piece's A values (one row's `group` bytes) are broadcast to every 32-bit lane, B's lanes x
    group bytes are read as they lie, and the intrinsic adds each lane's dot product into the
    accumulator. vpdpbusd takes A unsigned and B signed; sdot both signed: the widening ops the
    payload states must agree, else the piece is left alone (and the step's check fails).
    """
    rows, lanes = inst.tile(bits)
    unsigned_a = inst.dtype == "u8s8"
    i32, i8 = ir.IntegerType.get_signless(32), ir.IntegerType.get_signless(8)
    word_vec, byte_vec = ir.VectorType.get([lanes], i32), ir.VectorType.get([lanes * inst.k_group], i8)
    name = inst.intrinsic_at(bits)
    rewritten = 0
    for contract in q.ops_named(kernel, "vector.contract"):
        lhs, rhs, acc = list(contract.operands)[:3]
        a, b = _narrow(lhs, unsigned_a), _narrow(rhs, False)
        if a is None or b is None or _elements(acc.type) != lanes:
            continue
        if _elements(a.type) != inst.k_group or _elements(b.type) != \
                lanes * inst.k_group:
            continue
        with ir.InsertionPoint(contract), contract.location:
            group = vector.shape_cast(ir.VectorType.get([inst.k_group], i8), a)
            word = vector.extract(vector.bitcast(ir.VectorType.get([1], i32), group), [], [0])
            a_all = vector.bitcast(byte_vec, vector.broadcast(word_vec, word))
            b_all = vector.shape_cast(byte_vec, b)
            acc_flat = vector.shape_cast(word_vec, acc)
            result = llvm.call_intrinsic(word_vec, name, [acc_flat, a_all, b_all], [], [])
            reshaped = vector.shape_cast(contract.results[0].type, result)
        contract.results[0].replace_all_uses_with(reshaped)
        contract.erase()
        rewritten += 1
    return rewritten


def flatten_contiguous_reads(kernel: ir.Operation) -> int:
    """vector.transfer_read of an n-D vector that covers contiguous memory -> one 1-D vector.load.

    The dot-product routes read B as lanes x group (and smmla's A as 2 x 8): contiguous bytes
    that the n-D transfer lowering would fetch in `group`-element pieces and reassemble. Upstream
    has the rewrite (FlattenContiguousRowMajorTransferReadPattern) but exposes no transform op
    for it in MLIR 22. An in-bounds read whose map keeps memref dims in order is rewritten into a
    subview of exactly the elements read, collapsed to 1-D, and a vector.load of it; its users get a
    vector.shape_cast back, which folds away against the shape_casts the routes emit.
    """
    rewritten = 0
    for read in q.ops_named(kernel, "vector.transfer_read"):
        result_type = ir.VectorType(read.results[0].type)
        source = read.operands[0]
        if result_type.rank < 2 or not isinstance(source.type, ir.MemRefType):
            continue
        memref_type = ir.MemRefType(source.type)
        dims = _read_dims(ir.AffineMapAttr(read.attributes["permutation_map"]).value)
        in_bounds = all(ir.BoolAttr(b).value for b in ir.ArrayAttr(read.attributes["in_bounds"]))
        if dims is None or not in_bounds or not _contiguous(result_type.shape, memref_type, dims):
            continue
        indices = list(read.operands)[1:1 + memref_type.rank]
        count = _elements(result_type)
        with ir.InsertionPoint(read), read.location:
            flat_view = _contiguous_view(source, memref_type, indices, dims, result_type.shape)
            loaded = vector.load(ir.VectorType.get([count], result_type.element_type), flat_view,
                                 [arith.constant(ir.IndexType.get(), 0)])
            reshaped = vector.shape_cast(result_type, loaded)
        read.results[0].replace_all_uses_with(reshaped)
        read.erase()
        rewritten += 1
    return rewritten


def _read_dims(permutation: ir.AffineMap) -> list[int] | None:
    """The memref dim each vector dim reads along, when they are in increasing order (else None)."""
    dims = []
    for expr in permutation.results:
        if not isinstance(expr, ir.AffineDimExpr):
            return None
        dims.append(expr.position)
    return dims if dims == sorted(set(dims)) else None


def _contiguous(shape: list[int], memref_type: ir.MemRefType, dims: list[int]) -> bool:
    """Whether a vector of `shape`, its dims read along memref `dims`, is one dense run of memory."""
    strides, _ = memref_type.get_strides_and_offset()
    if strides[dims[-1]] != 1:  # (a dynamic stride is a sentinel that equals no static one)
        return False
    outer = next((i for i, n in enumerate(shape) if n != 1), len(shape) - 1)
    return all(strides[dims[d - 1]] == strides[dims[d]] * shape[d] for d in range(outer + 1, len(shape)))


def _contiguous_view(source: ir.Value, memref_type: ir.MemRefType, indices: list[ir.Value], dims: list[int],
                     shape: list[int]) -> ir.Value:
    """The elements a contiguous read covers, as a 1-D memref (a subview, then collapse_shape)."""
    strides, _ = memref_type.get_strides_and_offset()
    sizes = [1] * memref_type.rank
    for d, n in zip(dims, shape):
        sizes[d] = n
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    view_type = ir.MemRefType.get(shape, memref_type.element_type,
                                  layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[strides[d] for d in dims]))
    view = memref.subview(source, indices, sizes, [1] * memref_type.rank, result_type=view_type)
    flat_type = ir.MemRefType.get([math.prod(shape)], memref_type.element_type,
                                  layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[1]))
    return memref.collapse_shape(flat_type, view, [list(range(len(shape)))])


def flatten_carried_vectors(loop: ir.Operation) -> int:
    """Carry n-D accumulators through the k loop as the 1-D vectors the instructions use.

    LLVM lowers an n-D vector to an array of 1-D vectors, so a 2x2 smmla tile carried as
    vector<2x2xi32> is split and rebuilt around every instruction (ext/mov shuffles in the loop).
    When every use of a carried value is a shape_cast to one 1-D type and what the body yields is a
    shape_cast from it, the loop carries the 1-D value; the casts move outside the loop.
    """
    body = loop.regions[0].blocks[0]
    yield_op = body.operations[len(body.operations) - 1].operation
    changed = 0
    for index, arg in enumerate(list(body.arguments)[1:]):
        if not isinstance(arg.type, ir.VectorType) or ir.VectorType(arg.type).rank < 2:
            continue
        users = [use.owner.operation for use in arg.uses]
        flat_types = {str(u.results[0].type) for u in users if u.name == "vector.shape_cast"}
        yielded = yield_op.operands[index].owner
        if not users or len(flat_types) != 1 or any(u.name != "vector.shape_cast" for u in users) or \
                isinstance(yielded, ir.Block) or yielded.operation.name != "vector.shape_cast":
            continue
        flat = users[0].results[0].type
        if ir.VectorType(flat).rank != 1 or yielded.operation.operands[0].type != flat:
            continue
        nd = arg.type
        with ir.InsertionPoint(loop), loop.location:
            loop.operands[3 + index] = vector.shape_cast(flat, loop.operands[3 + index])
        yield_op.operands[index] = yielded.operation.operands[0]
        arg.set_type(flat)
        for user in users:
            user.results[0].replace_all_uses_with(arg)
            user.erase()
        result = loop.results[index]
        result.set_type(flat)
        with ir.InsertionPoint.after(loop), loop.location:
            restored = vector.shape_cast(nd, result)
        result.replace_all_uses_except(restored, restored.owner.operation)
        changed += 1
    return changed
