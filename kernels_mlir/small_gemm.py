"""Small and batched GEMMs, shape-specialized: every dimension a compile-time constant, no packing.

Shapes as ONNX Runtime's MatMul sees them: one GEMM [M, K] x [K, N]; [B, S, K] x [K, N], which it
flattens into one (B*S) x K GEMM (layout "flat"); or true batches [B, M, K] x [B, K, N] ("batched").
Operands are stored 2-D: A is (B*M) x K, B is K x N (flat) or (B*K) x N (batched), C is (B*M) x N.

The code holds C in mr x (v * lanes) register tiles over the whole k loop, read straight from A
(broadcast) and B (vectors); rows beyond whole tiles make one smaller tile, columns beyond whole
vectors one masked vector, so no element is computed one at a time and nothing is written past C.
With every bound constant, LLVM unrolls and schedules the whole call as it sees fit.

`weights = "packed"` takes B as a library takes a constant weight it packed once, at load time (as
ONNX Runtime's MLAS packs a MatMul's initializer when the session is created): ceil(N / nr) panels
of K x nr, each k's nr values contiguous, zero past N; the call reads each panel front to back
instead of an nr-wide strip N elements apart. Packing is the caller's, once, and not timed.

`sizes = "dynamic"` is the same loop nest with M, N and K read from the operands at run time (one
compiled function for every shape, as a library's): row tiles, then the last rows one at a time;
column tiles, then single vectors, then one masked vector. Beside the specialized code it measures
what knowing the shape is worth.

`scratch = "malloc"` adds one malloc/free pair per call, kept alive by an empty volatile asm that
takes the pointer (what benchmark::DoNotOptimize does): the seed's before/after, one allocation
per MatMul call. The module also holds an empty function of the same signature, and bench loops
around both: the native call's own cost, measured the same way as the kernel's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mlir import ir
from mlir.dialects import arith, func, llvm, memref, scf, vector

from .emitter import Emitter
from .gemm import MAX_DIM, multiply_accumulate, widen
from .harness import add_bench_loop
from .mlir_types import element_type, mark_entry_point
from .operands import GUARD, Guarded, Operands
from .reference import draw, error_bound, reference, verification_bytes
from .spec import DTYPES, MAX_MR, MAX_NR, SpecError

SMALL_GEMM, SMALL_GEMM_BENCH = "ukl_small_gemm", "ukl_small_gemm_bench"
EMPTY, EMPTY_BENCH = "ukl_empty_call", "ukl_empty_call_bench"
LAYOUTS = ("flat", "batched")
SCRATCH = ("none", "malloc")
WEIGHTS = ("rows", "packed")
SIZES = ("static", "dynamic")
#: Bytes the malloc variant allocates per batch entry: about what MLAS's per-call parameter block
#: (MLAS_SGEMM_DATA_PARAMS) takes, the allocation the seed removed.
SCRATCH_BYTES = 64
MAX_BATCH = 4096


def _positive(value: Any, name: str, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise SpecError(f"{name}: must be an integer from 1 to {high}, got {value!r}")


@dataclass(frozen=True)
class SmallGemmSpec:
    """C = A . B for `batch` products of M x N x K, shape-specialized, in mr x (vectors of nr) tiles."""

    m: int
    n: int
    k: int
    batch: int = 1
    layout: str = "flat"
    dtype: str = "f32"
    #: The register tile: rows, and columns (whole vectors of the target's lanes; at least one).
    mr: int = 6
    nr: int = 16
    scratch: str = "none"
    weights: str = "rows"
    sizes: str = "static"

    kind = "small_gemm"
    entry, bench = SMALL_GEMM, SMALL_GEMM_BENCH

    def __post_init__(self) -> None:
        for name in ("m", "n", "k"):
            _positive(getattr(self, name), name, MAX_DIM)
        _positive(self.batch, "batch", MAX_BATCH)
        _positive(self.mr, "mr", MAX_MR)
        _positive(self.nr, "nr", MAX_NR)
        if self.layout not in LAYOUTS:
            raise SpecError(f"layout: must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if self.scratch not in SCRATCH:
            raise SpecError(f"scratch: must be one of {list(SCRATCH)}, got {self.scratch!r}")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype: must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.weights not in WEIGHTS:
            raise SpecError(f"weights: must be one of {list(WEIGHTS)}, got {self.weights!r}")
        if self.sizes not in SIZES:
            raise SpecError(f"sizes: must be one of {list(SIZES)}, got {self.sizes!r}")
        if self.sizes == "dynamic" and self.weights == "packed":
            raise SpecError("sizes: run-time sizes read B as it is (weights = \"rows\"), not packed panels")
        object.__setattr__(self, "_hash", hash(tuple(self.to_dict().values())))

    def __hash__(self) -> int:
        """Hashed once: a JIT cache keyed by the problem looks it up on every call."""
        return self._hash

    @property
    def rows(self) -> int:
        """Rows of A and C as stored (every batch's, stacked)."""
        return self.batch * self.m

    @property
    def b_products(self) -> int:
        """How many B matrices there are: one shared by a flat batch, one per entry of a true batch."""
        return 1 if self.layout == "flat" else self.batch

    @property
    def panels(self) -> int:
        return -(-self.n // self.nr)

    @property
    def b_shape(self) -> tuple[int, int]:
        """B as stored: K x N row-major matrices stacked, or their nr-wide panels stacked."""
        if self.weights == "packed":
            return self.b_products * self.panels * self.k, self.nr
        return self.b_products * self.k, self.n

    def pack_weights(self, b: np.ndarray) -> np.ndarray:
        """B (every product's K x N, stacked) in the stored form."""
        if self.weights == "rows":
            return b
        padded = np.zeros((self.b_products, self.k, self.panels * self.nr), dtype=b.dtype)
        padded[:, :, :self.n] = b.reshape(self.b_products, self.k, self.n)
        return padded.reshape(self.b_products, self.k, self.panels, self.nr).transpose(0, 2, 1, 3).reshape(self.b_shape)

    def logical_b(self, stored: np.ndarray) -> np.ndarray:
        """pack_weights' inverse: every product's K x N B, stacked."""
        if self.weights == "rows":
            return stored
        panels = stored.reshape(self.b_products, self.panels, self.k, self.nr).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(panels.reshape(self.b_products, self.k, self.panels * self.nr)[:, :, :self.n]
                                    .reshape(self.b_products * self.k, self.n))

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k

    @property
    def bytes_needed(self) -> int:
        """A, B and C guarded, the snapshot verification keeps of each, two baseline outputs, and the
        float64 reference with its temporaries."""
        d = DTYPES[self.dtype]
        stored_b = self.b_shape[0] * self.b_shape[1]
        inputs, outputs = self.rows * self.k + self.b_products * self.k * self.n, self.rows * self.n
        operands = (self.rows * self.k + stored_b) * d.a.bytes + outputs * d.acc.bytes + 6 * GUARD * 8
        unpacked = 0 if self.weights == "rows" else 2 * stored_b * d.b.bytes  # packing, and the logical copy
        return 2 * operands + unpacked + 2 * outputs * d.acc.bytes + verification_bytes(inputs, outputs)

    def to_dict(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n, "k": self.k, "batch": self.batch, "layout": self.layout,
                "dtype": self.dtype, "mr": self.mr, "nr": self.nr, "scratch": self.scratch, "weights": self.weights,
                "sizes": self.sizes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SmallGemmSpec":
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpecError(f"not a small GEMM's fields: {exc}") from None

    def workload(self) -> dict[str, Any]:
        return {"m": self.m, "n": self.n, "k": self.k, "batch": self.batch, "layout": self.layout,
                "dtype": self.dtype}

    def operands(self, seed: int) -> Operands:
        rng = np.random.default_rng(seed)
        d = DTYPES[self.dtype]
        return Operands({"A": Guarded.around(draw(rng, d.a, self.rows, self.k)),
                         "B": Guarded.around(self.pack_weights(draw(rng, d.b, self.b_products * self.k, self.n))),
                         "C": Guarded.around(draw(rng, d.acc, self.rows, self.n))})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        acc = DTYPES[self.dtype].acc
        values, bounds = [], []
        weights = self.logical_b(ops.b)
        for i in range(self.batch):
            a = ops.a[i * self.m:(i + 1) * self.m]
            b = weights if self.layout == "flat" else weights[i * self.k:(i + 1) * self.k]
            zero = np.zeros((self.m, self.n), dtype=ops.c.dtype)
            values.append(reference(a.T, b, zero, acc.exact))
            bounds.append(error_bound(a.T, b, zero, acc))
        return np.concatenate(values), np.concatenate(bounds)


def operand_types(spec: SmallGemmSpec) -> list[ir.MemRefType]:
    d = DTYPES[spec.dtype]
    shapes = ([spec.rows, spec.k], list(spec.b_shape), [spec.rows, spec.n])
    if spec.sizes == "dynamic":
        shapes = ([ir.ShapedType.get_dynamic_size()] * 2,) * 3
    return [ir.MemRefType.get(shape, element_type(e)) for shape, e in zip(shapes, (d.a, d.b, d.acc))]


Size = int | ir.Value


class _Builder(Emitter):
    """The loop nest of one M x N x K product; m, n and k are the spec's (constants) unless given as
    run-time values (sizes = "dynamic")."""

    def __init__(self, spec: SmallGemmSpec, lanes: int, m: Size | None = None, n: Size | None = None,
                 k: Size | None = None, registers: int = 16):
        super().__init__()
        self.s, self.lanes = spec, lanes
        self.m, self.n, self.k = (spec.m if m is None else m), (spec.n if n is None else n), (spec.k if k is None else k)
        self.d = DTYPES[spec.dtype]
        self.elt = element_type(self.d.acc)
        self.vec = ir.VectorType.get([lanes], self.elt)
        self.b_vec = ir.VectorType.get([lanes], element_type(self.d.b))
        #: Vectors of C per register tile (a tile narrower than one vector still takes one). With fewer
        #: rows than the tile has (M < mr, known), the tile is as wide as the registers allow, in whole
        #: nr panels: one row of two vectors is two FMA chains, latency-bound at a quarter of the peak.
        panel = max(1, spec.nr // lanes)
        self.tile_vectors = panel
        if isinstance(self.m, int) and self.m < spec.mr:
            fitting = (registers - 1) // (self.m + 1)  # m x v accumulators, v B vectors, one broadcast
            self.tile_vectors = max(panel, fitting // panel * panel)

    def zero(self, elt: ir.Type) -> ir.Value:
        return arith.constant(elt, 0 if isinstance(elt, ir.IntegerType) else 0.0)

    def value(self, size: Size) -> ir.Value:
        return self.c(size) if isinstance(size, int) else size

    def tile(self, a, b, c, row: ir.Value, rows: int, cols: list[tuple[ir.Value, Size]],
             b_at: list[tuple[ir.Value, ir.Value]]) -> None:
        """C[row:row+rows, each (col, width) of `cols`] = A . B, in registers over the whole k loop; each
        vector's B at k is B[b_at row + k, b_at col]. A width short of a vector is masked: its C always,
        its B unless B is packed (zero-padded panels)."""
        lanes = self.lanes
        masks = [None if isinstance(width, int) and width == lanes else vector.create_mask(
            ir.VectorType.get([lanes], ir.IntegerType.get_signless(1)), [self.value(width)]) for _, width in cols]
        zero = vector.broadcast(self.vec, self.zero(self.elt))
        packed = self.s.weights == "packed"
        k_loop = scf.ForOp(self.c(0), self.value(self.k), self.c(1), [zero] * (rows * len(cols)))
        with ir.InsertionPoint(k_loop.body):
            k = k_loop.induction_variable
            b_k = [widen(vector.load(self.b_vec, b, [self.add(base, k), col]) if mask is None or packed else
                         vector.maskedload(self.b_vec, b, [self.add(base, k), col], mask,
                                           vector.broadcast(self.b_vec, self.zero(self.b_vec.element_type))),
                         self.d.b, self.vec) for (base, col), mask in zip(b_at, masks)]
            accs = iter(k_loop.inner_iter_args)
            out = []
            for r in range(rows):
                a_k = vector.broadcast(self.vec, widen(memref.load(a, [self.add(row, self.c(r)), k]), self.d.a,
                                                       self.elt))
                out += [multiply_accumulate(a_k, b_kv, next(accs), self.d.acc.exact) for b_kv in b_k]
            scf.YieldOp(out)
        results = iter(k_loop.results)
        for r in range(rows):
            for (col, _), mask in zip(cols, masks):
                at = [self.add(row, self.c(r)), col]
                if mask is None:
                    vector.store(next(results), c, at)
                else:
                    vector.maskedstore(c, at, mask, next(results))

    def rows(self, a, b, c, first_row: ir.Value, cols: list[tuple[ir.Value, int]],
             b_at: list[tuple[ir.Value, ir.Value]]) -> None:
        """Every row of the product in these columns: whole mr-row tiles, then one tile of the last rows.
        The rows are the inner loop: B's K x (tile) strip stays in cache while A's rows stream past it
        (with M small and K x N large, B is what would otherwise be read from memory once per row tile)."""
        s = self.s
        if not isinstance(self.m, int):  # run-time M: whole tiles, then the last rows one at a time
            whole = arith.subi(self.m, arith.remui(self.m, self.c(s.mr)))
            for lower, upper, step in ((self.c(0), whole, s.mr), (whole, self.m, 1)):
                i_loop = self.loop(lower, upper, step)
                with ir.InsertionPoint(i_loop.body):
                    self.tile(a, b, c, self.add(first_row, i_loop.induction_variable), step, cols, b_at)
                    scf.YieldOp([])
            return
        whole = s.m - s.m % s.mr
        if whole:
            i_loop = self.loop(0, whole, s.mr)
            with ir.InsertionPoint(i_loop.body):
                self.tile(a, b, c, self.add(first_row, i_loop.induction_variable), s.mr, cols, b_at)
                scf.YieldOp([])
        if s.m > whole:
            self.tile(a, b, c, self.add(first_row, self.c(whole)), s.m - whole, cols, b_at)

    def product(self, a, b, c, first_row: ir.Value, b_first: ir.Value) -> None:
        """One M x N x K product whose A and C rows start at first_row, its B at row b_first of B as stored:
        whole column tiles of tile_vectors vectors, then the last columns as whole vectors and one
        masked vector."""
        s, lanes = self.s, self.lanes
        width = self.tile_vectors * lanes
        packed = s.weights == "packed"
        if packed and (s.nr % lanes or width % s.nr):
            raise SpecError(f"weights = \"packed\": panels are nr = {s.nr} wide, a tile here is {width} "
                            f"({self.tile_vectors} vectors of {lanes}): nr must be a multiple of {lanes}")

        def b_at(col: ir.Value, vectors: int) -> list[tuple[ir.Value, ir.Value]]:
            """Where each of the vectors from C's column `col` (a tile's first, a whole number of panels
            in) reads B (row base, column)."""
            if not packed:
                return [(b_first, self.add(col, self.c(v * lanes))) for v in range(vectors)]
            first = arith.divui(col, self.c(s.nr))
            return [(self.add(b_first, arith.muli(self.add(first, self.c(v * lanes // s.nr)), self.c(s.k))),
                     self.c(v * lanes % s.nr)) for v in range(vectors)]

        if not isinstance(self.n, int):
            self._dynamic_columns(a, b, c, first_row, width, b_at)
            return
        whole = s.n - s.n % width
        if whole:
            j_loop = self.loop(0, whole, width)
            with ir.InsertionPoint(j_loop.body):
                j = j_loop.induction_variable
                self.rows(a, b, c, first_row, [(self.add(j, self.c(v * lanes)), lanes)
                                               for v in range(self.tile_vectors)], b_at(j, self.tile_vectors))
                scf.YieldOp([])
        if s.n > whole:
            cols = [(self.c(col), min(lanes, s.n - col)) for col in range(whole, s.n, lanes)]
            self.rows(a, b, c, first_row, cols, b_at(self.c(whole), len(cols)))

    def _dynamic_columns(self, a, b, c, first_row: ir.Value, width: int, b_at) -> None:
        """Run-time N: whole column tiles, then single vectors, then one masked vector if N leaves a tail."""
        lanes, n = self.lanes, self.n
        whole = arith.subi(n, arith.remui(n, self.c(width)))
        vectors_end = arith.subi(n, arith.remui(n, self.c(lanes)))
        for lower, upper, step in ((self.c(0), whole, width), (whole, vectors_end, lanes)):
            j_loop = self.loop(lower, upper, step)
            with ir.InsertionPoint(j_loop.body):
                j, count = j_loop.induction_variable, step // lanes
                self.rows(a, b, c, first_row, [(self.add(j, self.c(v * lanes)), lanes) for v in range(count)],
                          b_at(j, count))
                scf.YieldOp([])
        tail = arith.remui(n, self.c(lanes))
        has_tail = scf.IfOp(arith.cmpi(arith.CmpIPredicate.ugt, tail, self.c(0)))
        with ir.InsertionPoint(has_tail.then_block):
            self.rows(a, b, c, first_row, [(vectors_end, tail)], b_at(vectors_end, 1))
            scf.YieldOp([])


def _keep_alive(buffer: ir.Value | None = None) -> None:
    """An empty volatile asm (taking the buffer's address): the allocation, or a call to a function
    that does nothing else, cannot be optimized away."""
    if buffer is None:
        llvm.inline_asm(None, [], "", "", has_side_effects=True)
        return
    i64 = ir.IntegerType.get_signless(64)
    address = arith.index_cast(i64, memref.extract_aligned_pointer_as_index(buffer))
    llvm.inline_asm(None, [address], "", "r", has_side_effects=True)


def build_small_gemm(spec: SmallGemmSpec, lanes: int, registers: int = 16) -> ir.Module:
    """`ukl_small_gemm(A, B, C)` and its bench loop; `ukl_empty_call(A, B, C)` (returns at once) and
    its bench loop. `lanes` is the target's vector length for C's elements, `registers` its vector
    register count (how wide a tile of fewer rows than mr may grow)."""
    module = ir.Module.create()
    types = operand_types(spec)
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(SMALL_GEMM, ir.FunctionType.get(types, []))
        mark_entry_point(fn, noinline=True)
        with ir.InsertionPoint(fn.add_entry_block()):
            b_ = _Builder(spec, lanes)
            a, b, c = fn.entry_block.arguments
            scratch = None
            if spec.scratch == "malloc":
                scratch = memref.alloc(ir.MemRefType.get([spec.batch * SCRATCH_BYTES],
                                                         ir.IntegerType.get_signless(8)), [], [])
                _keep_alive(scratch)
            sizes = {}
            if spec.sizes == "dynamic":  # M, K from A, N from C: one function for every shape
                rows, k, n = memref.dim(a, b_.c(0)), memref.dim(a, b_.c(1)), memref.dim(c, b_.c(1))
                sizes = {"m": rows if spec.layout == "flat" else arith.divui(rows, b_.c(spec.batch)), "n": n, "k": k}
            if spec.layout == "flat":  # one (B*M) x K product, as ONNX Runtime flattens it
                flat = SmallGemmSpec(spec.rows, spec.n, spec.k, 1, "flat", spec.dtype, spec.mr, spec.nr,
                                     weights=spec.weights, sizes=spec.sizes)
                _Builder(flat, lanes, registers=registers, **sizes).product(a, b, c, b_.c(0), b_.c(0))
            else:
                b_ = _Builder(spec, lanes, registers=registers, **sizes)
                batches = b_.loop(0, spec.batch, 1)
                with ir.InsertionPoint(batches.body):
                    i = batches.induction_variable
                    b_rows = spec.b_shape[0] // spec.batch if not sizes else sizes["k"]
                    b_.product(a, b, c, arith.muli(i, b_.value(b_.m)), arith.muli(i, b_.value(b_rows)))
                    scf.YieldOp([])
            if scratch is not None:
                memref.dealloc(scratch)
            func.ReturnOp([])
        empty = func.FuncOp(EMPTY, ir.FunctionType.get(types, []))
        mark_entry_point(empty, noinline=True)
        with ir.InsertionPoint(empty.add_entry_block()):
            _keep_alive()
            func.ReturnOp([])
    add_bench_loop(module, SMALL_GEMM, SMALL_GEMM_BENCH)
    add_bench_loop(module, EMPTY, EMPTY_BENCH)
    return module


#: CBLAS enum values (cblas.h): row-major, no transpose.
CBLAS_ROW_MAJOR, CBLAS_NO_TRANS = 101, 111
LIBRARY_BENCH = "ukl_library_bench"


def build_library_loop(spec: SmallGemmSpec, symbol: str, int_bits: int) -> ir.Module:
    """`ukl_library_bench(A, B, C, n)`: n products by a library's `cblas_?gemm` (`symbol`, its integer
    arguments `int_bits` wide), one call per batch entry (or one for a flat batch), from native code,
    so that what is timed is the library's call and not Python's."""
    d = DTYPES[spec.dtype]
    if d.acc.mlir not in ("f32", "f64"):
        raise SpecError(f"dtype: cblas has no GEMM for {spec.dtype}")
    elt = element_type(d.acc)
    i32, wide, i64 = (ir.IntegerType.get_signless(bits) for bits in (32, int_bits, 64))
    ptr = ir.Type.parse("!llvm.ptr")
    module = ir.Module.create()
    types = operand_types(spec)
    with ir.InsertionPoint(module.body):
        # An llvm.func, not a func.func: the C-wrapper request would wrap a func.func declaration.
        arguments = ", ".join(str(t) for t in (i32, i32, i32, wide, wide, wide, elt, ptr, wide, ptr, wide, elt, ptr,
                                               wide))
        module.body.append(ir.Operation.parse(f"llvm.func @{symbol}({arguments})"))
        fn = func.FuncOp(LIBRARY_BENCH, ir.FunctionType.get([*types, ir.IndexType.get()], []))
        mark_entry_point(fn)
        with ir.InsertionPoint(fn.add_entry_block()):
            e = Emitter()
            *matrices, count = fn.entry_block.arguments
            bases = [arith.index_cast(i64, memref.extract_aligned_pointer_as_index(m)) for m in matrices]
            flat = spec.layout == "flat"
            calls, m = (1, spec.rows) if flat else (spec.batch, spec.m)
            integer = lambda value, typ=wide: arith.constant(typ, value)  # noqa: E731
            one, zero = arith.constant(elt, 1.0), arith.constant(elt, 0.0)
            steps = [spec.m * spec.k, 0 if flat else spec.k * spec.n, spec.m * spec.n]
            repeat = e.loop(0, count, 1)
            with ir.InsertionPoint(repeat.body):
                batch = e.loop(0, calls, 1)
                with ir.InsertionPoint(batch.body):
                    i = arith.index_cast(i64, batch.induction_variable)
                    a, b, c = (llvm.inttoptr(ptr, arith.addi(base, arith.muli(i, integer(step * d.acc.bytes, i64))))
                               for base, step in zip(bases, steps))
                    llvm.call(None, [
                        integer(CBLAS_ROW_MAJOR, i32), integer(CBLAS_NO_TRANS, i32), integer(CBLAS_NO_TRANS, i32),
                        integer(m), integer(spec.n), integer(spec.k), one, a, integer(spec.k), b, integer(spec.n),
                        zero, c, integer(spec.n)], [], [], callee=ir.FlatSymbolRefAttr.get(symbol))
                    scf.YieldOp([])
                scf.YieldOp([])
            func.ReturnOp([])
    return module
