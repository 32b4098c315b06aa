"""Test-only steps that break a kernel on purpose: wrong, crashing or hanging code.

Registered as a plugin (UKL_PLUGINS=tests.runner.sabotage_steps), so sweep workers know them too.
"""
from dataclasses import dataclass
from typing import ClassVar

from mlir import ir
from mlir.dialects import arith, llvm, memref, scf

from transforms import ir_query as q
from transforms.errors import StepFailed
from transforms.steps import Step, register_step

PLUGIN = "tests.runner.sabotage_steps"


def _k_loop(module: ir.Module) -> ir.Operation:
    (loop,) = q.ops_named(q.kernel_function(module), "scf.for")
    return loop


@register_step
@dataclass(frozen=True)
class SkipLastK(Step):
    """An off-by-one: the k loop stops one step early."""

    kind: ClassVar[str] = "test_skip_last_k"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            loop = _k_loop(module)
            with ir.InsertionPoint(loop):
                loop.operands[1] = arith.constant(ir.IndexType.get(), q.constant_int(loop.operands[1]) - 1)
        return "// sabotage: skip the last k step"


@register_step
@dataclass(frozen=True)
class OutOfBoundsStore(Step):
    """A store far past the end of A (2^40 rows): the kernel segfaults when it runs."""

    kind: ClassVar[str] = "test_out_of_bounds_store"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            kernel = q.kernel_function(module)
            a = kernel.regions[0].blocks[0].arguments[0]
            with ir.InsertionPoint(_k_loop(module)):
                index = ir.IndexType.get()
                value = arith.constant(ir.MemRefType(a.type).element_type, 1.0)
                memref.store(value, a, [arith.constant(index, 1 << 40), arith.constant(index, 0)])
        return "// sabotage: out-of-bounds store"


@register_step
@dataclass(frozen=True)
class NeverEnding(Step):
    """An scf.while whose condition is always true before the k loop: the kernel never returns.

    The loop stores into C, so no dead-code elimination may remove it.
    """

    kind: ClassVar[str] = "test_never_ending"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            c = q.kernel_function(module).regions[0].blocks[0].arguments[2]
            with ir.InsertionPoint(_k_loop(module)):
                zero = arith.constant(ir.IndexType.get(), 0)
                value = arith.constant(ir.MemRefType(c.type).element_type, 1.0)
                spin = scf.WhileOp([], [])
                before, after = spin.before.blocks.append(), spin.after.blocks.append()
                with ir.InsertionPoint(before):
                    scf.ConditionOp(arith.constant(ir.IntegerType.get_signless(1), 1), [])
                with ir.InsertionPoint(after):
                    memref.store(value, c, [zero, zero])
                    scf.YieldOp([])
        return "// sabotage: endless loop"


@dataclass(frozen=True)
class StrayStore(Step):
    """After the k loop, one store where the kernel must not write: operand `operand` at (row, col),
    where mr and nr in the indices stand for the tile's size (C[0, nr] is beside the block)."""

    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    operand: ClassVar[int] = 0
    at: ClassVar[tuple[str, str]] = ("0", "0")

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            target = q.kernel_function(module).regions[0].blocks[0].arguments[self.operand]
            loop = _k_loop(module)
            sizes = {"0": 0, "mr": ctx.spec.mr, "nr": ctx.spec.nr}
            with ir.InsertionPoint.at_block_terminator(loop.block):
                index = ir.IndexType.get()
                value = arith.constant(ir.MemRefType(target.type).element_type, 0.25)
                memref.store(value, target, [arith.constant(index, sizes[i]) for i in self.at])
        return f"// sabotage: store into operand {self.operand} at {self.at}"


@register_step
@dataclass(frozen=True)
class StoreIntoA(StrayStore):
    kind: ClassVar[str] = "test_store_into_a"


@register_step
@dataclass(frozen=True)
class StoreIntoB(StrayStore):
    kind: ClassVar[str] = "test_store_into_b"
    operand: ClassVar[int] = 1


@register_step
@dataclass(frozen=True)
class StoreBesideC(StrayStore):
    kind: ClassVar[str] = "test_store_beside_c"
    operand: ClassVar[int] = 2
    at: ClassVar[tuple[str, str]] = ("0", "nr")


@register_step
@dataclass(frozen=True)
class StoreBelowC(StrayStore):
    kind: ClassVar[str] = "test_store_below_c"
    operand: ClassVar[int] = 2
    at: ClassVar[tuple[str, str]] = ("mr", "0")


@register_step
@dataclass(frozen=True)
class FailedPromise(Step):
    """A step that did not deliver what it promises: the candidate does not compile."""

    kind: ClassVar[str] = "test_raises"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        raise StepFailed("test_raises: the promised IR property does not hold")


@register_step
@dataclass(frozen=True)
class HarnessBugStep(Step):
    """Stands for a bug in the harness itself (not in the candidate): it must stop a sweep, loudly."""

    kind: ClassVar[str] = "test_harness_bug"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        raise NotImplementedError("a harness bug")


@register_step
@dataclass(frozen=True)
class SlowCompile(Step):
    """Changes nothing, but takes `seconds` to do it: a candidate a worker can be killed in the middle of."""

    kind: ClassVar[str] = "test_slow_compile"
    seconds: float = 6.0

    def apply(self, module: ir.Module, ctx) -> str:
        import time
        time.sleep(self.seconds)
        return f"// slept {self.seconds} s"


@register_step
@dataclass(frozen=True)
class UnselectableIntrinsic(Step):
    """A call to an AArch64 intrinsic whose result is stored into C: on an x86 target, LLVM's
    instruction selection aborts the process ("Cannot select"), as it does on a feature a target lacks."""

    kind: ClassVar[str] = "test_unselectable_intrinsic"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            c = q.kernel_function(module).regions[0].blocks[0].arguments[2]
            with ir.InsertionPoint(_k_loop(module)):
                i32 = ir.IntegerType.get_signless(32)
                zero = arith.constant(ir.IndexType.get(), 0)
                crc = llvm.call_intrinsic(i32, "llvm.aarch64.crc32b", [arith.constant(i32, 1), arith.constant(i32, 2)],
                                          [], ir.DenseI32ArrayAttr.get([]))
                memref.store(arith.sitofp(ir.MemRefType(c.type).element_type, crc), c, [zero, zero])
        return "// sabotage: an intrinsic x86 cannot select"


@register_step
@dataclass(frozen=True)
class ShiftedAccumulator(Step):
    """An SME kernel whose ZA tile is loaded from C one row down: every ZA slice accumulates onto the wrong
    row's values (the write back is where it belongs)."""

    kind: ClassVar[str] = "test_shifted_accumulator"
    needs: ClassVar[frozenset[str]] = frozenset({"k_loop"})
    scalable_kinds: ClassVar[frozenset[str]] = frozenset({"sme"})

    def apply(self, module: ir.Module, ctx) -> str:
        with module.context, ir.Location.unknown():
            c = q.kernel_function(module).regions[0].blocks[0].arguments[2]
            (read,) = [op for op in q.ops_named(q.kernel_function(module), "vector.transfer_read")
                       if op.operands[0] == c]
            with ir.InsertionPoint(read):
                read.operands[1] = arith.constant(ir.IndexType.get(), 1)
        return "// sabotage: C's tile read one row down"
