"""A full GEMM around the micro-kernel: C (+)= A . B for any M, N, K, BLIS-style packing and blocking.

Loops (outer to inner): jc over N by nc, pc over K by kc (B's kc x nc block packed once),
ic over M by mc (A's mc x kc block packed once), then jr / ir over the nr x mr register tiles,
each one micro-kernel call on packed panels. Packing is O(MK + KN) work per block, outside the
O(MNK) loops. Edges: packed panels are zero-padded to whole tiles, and a C tile that sticks out
of C is computed in a small local tile and only its valid part written back.

`traversal = "tiles"` is the same code with nc >= N, kc >= K and mc >= M: A and B are packed
once, whole, and one loop nest walks the (m, n) tiles with no k blocking (the ruy shape).
`traversal = "direct"` is the unpacked loop nest that libraries fall back to for small problems:
no packing, C in mr x nr register tiles held in registers over k, read straight from A and B.
The micro-kernels are external functions (`kernel_symbol(kc)`), compiled and linked separately.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from mlir import ir
from mlir.dialects import arith, func, llvm, memref, scf, vector

from .harness import add_bench_loop
from .mlir_types import c_block_type, element_type, mark_entry_point, panel_type
from .names import GEMM, GEMM_BENCH, kernel_symbol
from .operands import GUARD, Guarded, Operands
from .reference import draw, error_bound, reference, verification_bytes
from .spec import DTYPES, SCALABLE_BITS, KernelSpec, SpecError

TRAVERSALS = ("blis", "tiles", "direct")
DEFAULT_TRAVERSAL = "blis"
#: Which loop threads split: jc (columns of C, each thread packs its own B block) or ic (rows, each
#: packs its own A block and its own copy of B's). The direct traversal always splits rows.
SPLITS = ("jc", "ic")
#: The innermost register-tile loop (GemmSpec.inner).
INNER_LOOPS = ("ir", "jr")
#: A typo guard on the thread count (the config also bounds it by this machine's CPUs).
MAX_THREADS = 256
#: `direct`: vectors of C per row block beyond the whole register tiles (edges), kept in registers over k.
DIRECT_VECTORS = 8
#: `direct`: B's rows a multiple of this many bytes apart land in a quarter or less of L1's sets (8-way,
#: 64-byte lines, 32-48 KiB): its tile columns are read from a contiguous copy instead (the power-of-two
#: cliff: 512^3 at 0.79x and 1024^3 at 0.65x their neighbours' speed on Zen 3 without it).
CONFLICT_STRIDE = 1024
#: A panels are packed this many bytes of k at a time from each row (one AVX2 register; two NEON ones).
TRANSPOSE_BYTES = 32
#: Blocking defaults, measured on Zen 3 with the 6x16 kernel at kc = 512: the packed A block
#: (mc x kc) stays in L2, the packed B block (kc x nc, 2 MiB in f32) in L3.
DEFAULT_MC, DEFAULT_NC = 96, 1024
#: Upper bound on M, N, K (a typo guard, as for the micro-kernel's sizes).
MAX_DIM = 1 << 15


@dataclass(frozen=True)
class Gather:
    """An operand the driver does not take as a matrix but reads element by element while packing it
    (an implicit GEMM's input through its indirection buffer): the arguments that replace the matrix,
    and how to read element (row, col) from them (called inside the matrix's bounds only)."""

    types: tuple[ir.Type, ...]
    read: Callable[[tuple[ir.Value, ...], ir.Value, ir.Value], ir.Value]


@dataclass(frozen=True)
class GemmSpec:
    """C (+)= A . B of M x N x K around `kernel`, the micro-kernel (its tile, k-blocking kc, dtype and k
    grouping), blocked and traversed as the other fields say."""

    m: int
    n: int
    k: int
    kernel: KernelSpec = KernelSpec(6, 16, 256)
    mc: int = DEFAULT_MC
    nc: int = DEFAULT_NC
    traversal: str = DEFAULT_TRAVERSAL
    #: C += A.B when True; C = A.B (C zeroed first) when False.
    accumulate: bool = False
    #: Threads computing the product, each on its share of the `split` loop, with its own packing buffers.
    threads: int = 1
    split: str = "jc"
    #: A bound in bytes on the packed B block (kc x nc), which caps nc: the chunked packing of the
    #: seed's route-selection PR (2 MiB there). None: unbounded (nc as given).
    pack_bytes: int | None = None
    #: The innermost register-tile loop: "ir" (BLIS: one B micro-panel stays in L1 while A's stream
    #: from the A block in L2) or "jr" (one A micro-panel stays in L1 while B's stream from the B
    #: block, which should then fit L2). Measured on Zen 5 at 1024^3: jr runs 12x32 6% faster, 6x32 alike.
    inner: str = "ir"
    #: For a scalable (SVE, SME) micro-kernel: the vector length in bits this GEMM is built for. Its loops and
    #: packing are sized by the tile the kernel computes there (tile); the code checks the length at entry and
    #: traps on another one. None for fixed-width kernels (left out of to_dict: their hashes stay).
    vector_bits: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kernel, KernelSpec):
            raise SpecError(f"kernel: must be a micro-kernel's spec, got {self.kernel!r}")
        for name in ("m", "n", "k", "mc", "nc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIM:
                raise SpecError(f"{name}: must be an integer between 1 and {MAX_DIM}, got {value!r}")
        if self.traversal not in TRAVERSALS:
            raise SpecError(f"traversal: must be one of {list(TRAVERSALS)}, got {self.traversal!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= MAX_THREADS:
            raise SpecError(f"threads: must be an integer between 1 and {MAX_THREADS}, got {self.threads!r}")
        if self.inner not in INNER_LOOPS:
            raise SpecError(f"inner: must be one of {list(INNER_LOOPS)}, got {self.inner!r}")
        if self.split not in SPLITS:
            raise SpecError(f"split: must be one of {list(SPLITS)}, got {self.split!r}")
        if self.pack_bytes is not None:
            panel = self.b_panel_bytes
            if isinstance(self.pack_bytes, bool) or not isinstance(self.pack_bytes, int):
                raise SpecError(f"pack_bytes: must be a whole number of bytes (or \"unbounded\"), "
                                f"got {self.pack_bytes!r}")
            if self.pack_bytes < panel:
                raise SpecError(f"pack_bytes: {self.pack_bytes} bytes hold less than one packed B panel "
                                f"(kc x nr = {self.kc} x {self.nr} {self.dtype} = {panel} bytes)")
        if self.kernel.scalable is not None:
            if self.vector_bits not in SCALABLE_BITS:
                raise SpecError(f"vector_bits: a GEMM around a {self.kernel.scalable} kernel is built for one vector "
                                f"length, one of {list(SCALABLE_BITS)}, got {self.vector_bits!r}")
            if self.traversal == "direct":
                raise SpecError("traversal: direct builds its own fixed-width vector code; a scalable kernel needs "
                                "a packed traversal")
        elif self.vector_bits is not None:
            raise SpecError(f"vector_bits: only a GEMM around a scalable kernel has one, got {self.vector_bits!r}")
        if self.traversal == "blis" and (self.mc % self.mr or self.nc % self.nr):
            raise SpecError(f"mc and nc: must be multiples of mr={self.mr} and nr={self.nr}, "
                            f"got mc={self.mc}, nc={self.nc}")

    @property
    def tile(self) -> KernelSpec:
        """The micro-kernel as one call computes it here: the kernel itself, or a scalable one at vector_bits."""
        return self.kernel.at_length(self.vector_bits)

    # The micro-kernel's facts, read through (KernelSpec checked them).
    mr = property(lambda self: self.tile.mr)
    nr = property(lambda self: self.tile.nr)
    kc = property(lambda self: self.kernel.kc)
    dtype = property(lambda self: self.kernel.dtype)
    k_group = property(lambda self: self.kernel.k_group)
    group = property(lambda self: self.kernel.group)

    k_step = property(lambda self: self.kernel.k_step)

    def to_dict(self) -> dict:
        """Flat JSON: the micro-kernel's fields beside the GEMM's (the form GEMM hashes were first made of,
        so a config's GEMM hash stays what it was)."""
        data = dataclasses.asdict(self)
        del data["kernel"]
        if data["vector_bits"] is None:
            del data["vector_bits"]
        return {**data, **self.kernel.fields()}

    @classmethod
    def from_dict(cls, data: dict) -> "GemmSpec":
        """Inverse of to_dict (SpecError naming what is wrong)."""
        fields = dict(data)
        try:
            return cls(kernel=KernelSpec.from_fields(fields), **fields)
        except (KeyError, TypeError) as exc:
            raise SpecError(f"not a GEMM's fields: {exc}") from None

    @property
    def b_panel_bytes(self) -> int:
        """One packed kc x nr panel of B: the least a packing bound must hold."""
        return padded(self.kc, self.k_step) * self.nr * DTYPES[self.dtype].b.bytes

    @property
    def blocks(self) -> tuple[int, int, int]:
        """(mc, nc, kc) as run: clipped to the (tile-rounded) matrix, or all of it for `tiles`."""
        m_tiles = -(-self.m // self.mr) * self.mr
        n_tiles = -(-self.n // self.nr) * self.nr
        if self.traversal == "tiles":
            return m_tiles, n_tiles, self.k
        nc = self.nc
        if self.pack_bytes is not None:  # whole panels of B that fit the bound
            nc = min(nc, self.pack_bytes // self.b_panel_bytes * self.nr)
        return min(self.mc, m_tiles), min(nc, n_tiles), min(self.kc, self.k)

    @property
    def kernel_kcs(self) -> tuple[int, ...]:
        """The k-depths of the micro-kernels this GEMM calls: the block's, and the remainder's if any."""
        if self.traversal == "direct":
            return ()
        kc = self.blocks[2]
        depths = (kc,) if self.k % kc == 0 else (kc, self.k % kc)
        # A remainder rounded up to whole groups may reach the block's own depth: one kernel then.
        return tuple(dict.fromkeys(padded(depth, self.k_step) for depth in depths))

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    @property
    def splits_rows(self) -> bool:
        return self.split == "ic" or self.traversal == "direct"

    def partition(self) -> list[tuple[int, int]]:
        """Each thread's [lo, hi) of the split dimension, in whole register tiles, so no C tile is
        shared (a thread may get nothing when there are fewer tiles than threads)."""
        extent, unit = (self.m, self.mr) if self.splits_rows else (self.n, self.nr)
        tiles = -(-extent // unit)
        bounds = [tiles * t // self.threads for t in range(self.threads + 1)]
        return [(min(extent, lo * unit), min(extent, hi * unit)) for lo, hi in zip(bounds, bounds[1:])]

    @property
    def bytes_needed(self) -> int:
        """Memory one measurement takes, counted before any of it is taken: A, B and C (guarded, and the
        snapshot verification keeps of each), the two baselines' outputs, every thread's packing buffers,
        and the float64 reference with its temporaries."""
        mc, nc, kc = self.blocks
        d = DTYPES[self.dtype]
        inputs, outputs = self.m * self.k + self.k * self.n, self.m * self.n
        operands = inputs * d.bytes + outputs * d.acc.bytes + 6 * GUARD * 8
        packing = self.threads * (mc * kc + kc * nc) * d.bytes
        return 2 * operands + 2 * outputs * d.acc.bytes + packing + verification_bytes(inputs, outputs)

    @property
    def np_dtype(self) -> type:
        return DTYPES[self.dtype].numpy

    # --- the Problem protocol (kernels_mlir.problem); mr .. traversal are how, not what ---
    kind = "gemm"
    entry, bench = GEMM, GEMM_BENCH

    def workload(self) -> dict:
        return {"m": self.m, "n": self.n, "k": self.k, "dtype": self.dtype, "accumulate": self.accumulate}

    def operands(self, seed: int) -> Operands:
        rng = np.random.default_rng(seed)
        d = DTYPES[self.dtype]
        a, b, c = (draw(rng, element, *shape) for element, shape in (
            (d.a, (self.m, self.k)), (d.b, (self.k, self.n)), (d.acc, (self.m, self.n))))
        return Operands({"A": Guarded.around(a), "B": Guarded.around(b), "C": Guarded.around(c)})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        acc = DTYPES[self.dtype].acc
        start = ops.c if self.accumulate else np.zeros_like(ops.c)
        return reference(ops.a.T, ops.b, start, acc.exact), error_bound(ops.a.T, ops.b, start, acc)


def padded(depth: int, group: int) -> int:
    """A k depth rounded up to whole groups: panels of grouped dtypes are zero-padded in k."""
    return -(-depth // group) * group


class _Builder:
    """Emits the loop nest; every helper assumes an active insertion point and location."""

    def __init__(self, spec: GemmSpec, lds: tuple[int, int, int] | None = None,
                 gathers: dict[str, Gather] | None = None, packed: frozenset[str] = frozenset()):
        self.s = spec
        #: Operands ("A", "B") read through a Gather instead of as matrices.
        self.gathers = gathers or {}
        #: Operands ("A", "B") the caller hands over already packed in panels (packed_type).
        self.packed = packed
        #: Leading dimensions of A, B and C (a view into a larger matrix, e.g. one group of a convolution).
        self.lda, self.ldb, self.ldc = lds or (spec.k, spec.n, spec.n)
        self.index = ir.IndexType.get()
        #: This call's share of C: rows [m_lo, m_hi) and columns [n_lo, n_hi) (set by the entry block).
        self.m_lo = self.m_hi = self.n_lo = self.n_hi = None
        d = DTYPES[spec.dtype]
        #: C's (accumulator) element, and A's and B's (they differ for low-precision dtypes).
        self.elt, self.a_elt, self.b_elt = element_type(d.acc), element_type(d.a), element_type(d.b)
        self.g = spec.group
        self.k_step = spec.k_step

    def zero(self, elt: ir.Type) -> ir.Value:
        if isinstance(elt, ir.IntegerType):
            return arith.constant(elt, 0)
        return arith.constant(elt, 0.0)

    def c(self, value: int) -> ir.Value:
        return arith.constant(self.index, value)

    def share(self, lo: ir.Value, hi: ir.Value) -> None:
        """This call's rows or columns are [lo, hi); the other dimension is whole."""
        if self.s.splits_rows:
            self.m_lo, self.m_hi, self.n_lo, self.n_hi = lo, hi, self.c(0), self.c(self.s.n)
        else:
            self.m_lo, self.m_hi, self.n_lo, self.n_hi = self.c(0), self.c(self.s.m), lo, hi

    def zero_or_c(self, vec: ir.VectorType, c: ir.Value, row: ir.Value, col: ir.Value, accumulate: bool) -> ir.Value:
        if accumulate:
            return vector.load(vec, c, [row, col])
        return vector.broadcast(vec, self.zero(self.elt))

    def min(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return arith.minsi(a, b)

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return arith.addi(a, b)

    def loop(self, lower: ir.Value, upper: ir.Value, step: int):
        return scf.ForOp(lower, upper, self.c(step))

    def read(self, side: str, source, row: ir.Value, col: ir.Value) -> ir.Value:
        """Element (row, col) of operand `side` ("A", "B", "C"): a load, or its Gather's read."""
        if side in self.gathers:
            return self.gathers[side].read(source, row, col)
        return memref.load(source, [row, col])

    def guarded_load(self, source, row: ir.Value, col: ir.Value, rows: int, cols: int, side: str = "C") -> ir.Value:
        """source[row, col], or 0 outside rows x cols: indices are clamped, then the value selected."""
        inside = arith.andi(arith.cmpi(arith.CmpIPredicate.slt, row, self.c(rows)),
                            arith.cmpi(arith.CmpIPredicate.slt, col, self.c(cols)))
        value = self.read(side, source, self.min(row, self.c(rows - 1)), self.min(col, self.c(cols - 1)))
        return arith.select(inside, value, self.zero(value.type))

    def store_packed(self, value: ir.Value, buffer: ir.Value, p: ir.Value, k: ir.Value, w: ir.Value) -> None:
        """buffer[p, k, w], or for grouped dtypes buffer[p, k / g, w * g + k % g] (the VNNI layout)."""
        if self.g == 1:
            memref.store(value, buffer, [p, k, w])
            return
        g = self.c(self.g)
        memref.store(value, buffer, [p, arith.divui(k, g), self.add(arith.muli(w, g), arith.remui(k, g))])

    def pack(self, buffer: ir.Value, source: ir.Value, outer0: ir.Value, k0: ir.Value, extent: ir.Value,
             kc: int, width: int, a_side: bool) -> None:
        """buffer[p, k, w] = the source element at row/col outer0 + p*width + w, depth k0 + k.

        Panels that lie inside the matrix are plain copies: A panel by panel, each k-step's
        `width` elements stored contiguously; B row by row (B's rows are contiguous in memory,
        while a panel of B strides over kc rows). The panel that sticks out of the matrix is
        zero-padded, and so is a grouped dtype's last group of k when K does not fill it.
        """
        depth = padded(kc, self.k_step)
        guard_all = depth != kc  # a padded k (grouped dtypes, SME's 4-way): every panel needs the k guard
        inside = arith.divsi(extent, self.c(width))  # extent never passes the matrix's edge
        if a_side or guard_all:
            count = arith.divsi(arith.addi(extent, self.c(width - 1)), self.c(width)) if guard_all else inside
            p_loop = self.loop(self.c(0), count, 1)
            with ir.InsertionPoint(p_loop.body):
                p = p_loop.induction_variable
                self._copy_panel(buffer, source, p, self._panel_base(outer0, p, width), k0, depth, width, a_side,
                                 guarded=guard_all)
                scf.YieldOp([])
            if guard_all:
                return
        else:
            k_loop = self.loop(self.c(0), self.c(kc), 1)
            with ir.InsertionPoint(k_loop.body):
                k = k_loop.induction_variable
                p_loop = self.loop(self.c(0), inside, 1)
                with ir.InsertionPoint(p_loop.body):
                    p = p_loop.induction_variable
                    base = self._panel_base(outer0, p, width)
                    if self.g == 1 and "B" not in self.gathers:  # a row of the panel is one vector copy
                        row = vector.load(ir.VectorType.get([width], self.b_elt), source, [self.add(k0, k), base])
                        vector.store(row, buffer, [p, k, self.c(0)])
                    else:
                        w_loop = self.loop(self.c(0), self.c(width), 1)
                        with ir.InsertionPoint(w_loop.body):
                            w = w_loop.induction_variable
                            self.store_packed(self.read("B", source, self.add(k0, k), self.add(base, w)),
                                              buffer, p, k, w)
                            scf.YieldOp([])
                    scf.YieldOp([])
                scf.YieldOp([])
        sticks_out = arith.cmpi(arith.CmpIPredicate.slt, arith.muli(inside, self.c(width)), extent)
        edge = scf.IfOp(sticks_out)
        with ir.InsertionPoint(edge.then_block):
            self._copy_panel(buffer, source, inside, self._panel_base(outer0, inside, width), k0, kc, width,
                             a_side, guarded=True)
            scf.YieldOp([])

    def _panel_base(self, outer0: ir.Value, p: ir.Value, width: int) -> ir.Value:
        return self.add(outer0, arith.muli(p, self.c(width)))

    def _copy_panel(self, buffer, source, p, base, k0, kc: int, width: int, a_side: bool, guarded: bool) -> None:
        s = self.s
        start = 0
        if a_side and not guarded and self.g == 1 and "A" not in self.gathers:
            start = self._transpose_panel(buffer, source, p, base, k0, kc, width)
        k_loop = self.loop(self.c(start), self.c(kc), 1)
        with ir.InsertionPoint(k_loop.body):
            w_loop = self.loop(self.c(0), self.c(width), 1)
            with ir.InsertionPoint(w_loop.body):
                k, w = k_loop.induction_variable, w_loop.induction_variable
                row, col = (self.add(base, w), self.add(k0, k)) if a_side else (self.add(k0, k), self.add(base, w))
                if guarded:
                    value = self.guarded_load(source, row, col, *((s.m, s.k) if a_side else (s.k, s.n)),
                                              side="A" if a_side else "B")
                else:
                    value = self.read("A" if a_side else "B", source, row, col)
                self.store_packed(value, buffer, p, k, w)
                scf.YieldOp([])
            scf.YieldOp([])

    def _transpose_panel(self, buffer, source, p, base, k0, kc: int, width: int) -> int:
        """An A panel inside the matrix, TRANSPOSE_BYTES of k at a time: a vector from each of its `width`
        rows, transposed by one shuffle into the panel's k-major order and stored whole (LLVM vectorizes
        neither the scalar copy nor its stores: its source and the buffer may alias). Returns the depth
        it packed; the scalar copy does the rest."""
        lanes = TRANSPOSE_BYTES // DTYPES[self.s.dtype].a.bytes
        whole = kc - kc % lanes
        if not whole:
            return 0
        flat = memref.collapse_shape(
            ir.MemRefType.get([math.prod(ir.MemRefType(buffer.type).shape)], self.a_elt), buffer, [[0, 1, 2]])
        depth = ir.MemRefType(buffer.type).shape[1]
        vec = ir.VectorType.get([lanes], self.a_elt)
        # Element w*lanes + k of the rows laid end to end goes to k*width + w.
        order = [w * lanes + k for k in range(lanes) for w in range(width)]
        k_loop = self.loop(self.c(0), self.c(whole), lanes)
        with ir.InsertionPoint(k_loop.body):
            k = k_loop.induction_variable
            rows = [vector.load(vec, source, [self.add(base, self.c(w)), self.add(k0, k)]) for w in range(width)]
            joined = rows[0]
            for row in rows[1:]:
                joined = vector.shuffle(joined, row, list(range(ir.VectorType(joined.type).shape[0] + lanes)))
            panel = vector.shuffle(joined, joined, order) if width > 1 else joined
            at = arith.muli(self.add(arith.muli(p, self.c(depth)), k), self.c(width))
            vector.store(panel, flat, [at])
            scf.YieldOp([])
        return whole

    def panel(self, buffer: ir.Value, index: ir.Value, kc: int, width: int) -> ir.Value:
        """buffer[index] as the panel type the micro-kernel takes: kc x width, or (kc/g) x (width*g)."""
        rows, cols = padded(kc, self.k_step) // self.g, width * self.g
        return memref.subview(buffer, [index, 0, 0], [1, rows, cols], [1, 1, 1],
                              result_type=panel_type(rows, cols, ir.MemRefType(buffer.type).element_type))

    def packed_panel(self, packed: ir.Value, first: ir.Value, pc: ir.Value, kc: int, width: int) -> ir.Value:
        """The kc x width panel of a caller-packed operand holding row (A) or column (B) `first`, from depth pc."""
        return memref.subview(packed, [arith.divui(first, self.c(width)), pc, 0], [1, kc, width], [1, 1, 1],
                              result_type=panel_type(kc, width, ir.MemRefType(packed.type).element_type))

    def tile(self, matrix: ir.Value, row: ir.Value, col: ir.Value) -> ir.Value:
        """The mr x nr view of C at (row, col), cast to the micro-kernel's C type."""
        s, dyn = self.s, ir.ShapedType.get_dynamic_stride_or_offset()
        view_type = ir.MemRefType.get([s.mr, s.nr], self.elt, layout=ir.StridedLayoutAttr.get(
            offset=dyn, strides=[self.ldc, 1]))
        view = memref.subview(matrix, [row, col], [s.mr, s.nr], [1, 1], result_type=view_type)
        return memref.cast(c_block_type(s.mr, s.nr, DTYPES[s.dtype].acc), view)

    def zero_tile(self, c: ir.Value, row: ir.Value, col: ir.Value) -> None:
        """Zeros into the mr x nr tile of C at (row, col), a vector per row: the first k block's C
        (C = A.B), written where the micro-kernel is about to read it, so it is in L1 when read."""
        s = self.s
        vec = ir.VectorType.get([s.nr], self.elt)
        zeros = vector.broadcast(vec, self.zero(self.elt))
        for i in range(s.mr):
            vector.store(zeros, c, [self.add(row, self.c(i)), col])

    def edge_tile(self, c: ir.Value, local: ir.Value, row: ir.Value, col: ir.Value, call, fresh: bool) -> None:
        """A C tile that sticks out of C: copy in (zeros outside, or everywhere when `fresh`: C holds
        nothing yet), compute, copy the valid part back."""
        s = self.s
        i_loop = self.loop(self.c(0), self.c(s.mr), 1)
        with ir.InsertionPoint(i_loop.body):
            j_loop = self.loop(self.c(0), self.c(s.nr), 1)
            with ir.InsertionPoint(j_loop.body):
                i, j = i_loop.induction_variable, j_loop.induction_variable
                value = self.zero(self.elt) if fresh else \
                    self.guarded_load(c, self.add(row, i), self.add(col, j), s.m, s.n)
                memref.store(value, local, [i, j])
                scf.YieldOp([])
            scf.YieldOp([])
        call(memref.cast(c_block_type(s.mr, s.nr, DTYPES[s.dtype].acc), local))
        rows = self.min(self.c(s.mr), arith.subi(self.c(s.m), row))
        cols = self.min(self.c(s.nr), arith.subi(self.c(s.n), col))
        i_loop = self.loop(self.c(0), rows, 1)
        with ir.InsertionPoint(i_loop.body):
            j_loop = self.loop(self.c(0), cols, 1)
            with ir.InsertionPoint(j_loop.body):
                i, j = i_loop.induction_variable, j_loop.induction_variable
                memref.store(memref.load(local, [i, j]), c, [self.add(row, i), self.add(col, j)])
                scf.YieldOp([])
            scf.YieldOp([])

    def k_block(self, a, b, c, a_pack, b_pack, local, jc, nc_cur, pc, kc: int, fresh: bool) -> None:
        """One kc-deep block: pack B's kc x nc_cur block, then for each mc block of A, pack it and
        sweep the register tiles. `fresh`: the first block of C = A.B, whose tiles are zeroed just
        before their first call (no pass over C of its own: 1-3% of a 256^3 GEMM on Zen 3)."""
        s = self.s
        mc = self.s.blocks[0]
        if "B" not in self.packed:
            self.pack(b_pack, b, jc, pc, nc_cur, kc, s.nr, a_side=False)
        ic_loop = self.loop(self.m_lo, self.m_hi, mc)
        with ir.InsertionPoint(ic_loop.body):
            ic = ic_loop.induction_variable
            mc_cur = self.min(self.c(mc), arith.subi(self.m_hi, ic))
            if "A" not in self.packed:
                self.pack(a_pack, a, ic, pc, mc_cur, kc, s.mr, a_side=True)
            # The outer register-tile loop's panel stays in L1 while the inner loop's panels stream.
            j_outer = s.inner == "ir"
            outer = self.loop(self.c(0), nc_cur if j_outer else mc_cur, s.nr if j_outer else s.mr)
            with ir.InsertionPoint(outer.body):
                inner = self.loop(self.c(0), mc_cur if j_outer else nc_cur, s.mr if j_outer else s.nr)
                with ir.InsertionPoint(inner.body):
                    ir_, jr = (inner, outer) if j_outer else (outer, inner)
                    ir_, jr = ir_.induction_variable, jr.induction_variable
                    row, col = self.add(ic, ir_), self.add(jc, jr)
                    b_panel = self.packed_panel(b, col, pc, kc, s.nr) if "B" in self.packed else \
                        self.panel(b_pack, arith.divui(jr, self.c(s.nr)), kc, s.nr)
                    a_panel = self.packed_panel(a, row, pc, kc, s.mr) if "A" in self.packed else \
                        self.panel(a_pack, arith.divui(ir_, self.c(s.mr)), kc, s.mr)

                    def call(c_tile: ir.Value) -> None:
                        func.CallOp([], ir.FlatSymbolRefAttr.get(kernel_symbol(padded(kc, self.k_step))),
                                    [a_panel, b_panel, c_tile])

                    full = arith.andi(
                        arith.cmpi(arith.CmpIPredicate.sle, self.add(row, self.c(s.mr)), self.c(s.m)),
                        arith.cmpi(arith.CmpIPredicate.sle, self.add(col, self.c(s.nr)), self.c(s.n)))
                    branch = scf.IfOp(full, has_else=True)
                    with ir.InsertionPoint(branch.then_block):
                        if fresh:
                            self.zero_tile(c, row, col)
                        call(self.tile(c, row, col))
                        scf.YieldOp([])
                    with ir.InsertionPoint(branch.else_block):
                        self.edge_tile(c, local, row, col, call, fresh)
                        scf.YieldOp([])
                    scf.YieldOp([])
                scf.YieldOp([])
            scf.YieldOp([])

def operand_types(spec: GemmSpec, lds: tuple[int, int, int] | None) -> list[ir.Type]:
    """A, B and C as the driver takes them: whole row-major matrices, or with `lds` views at any
    offset into larger row-major matrices (their rows lda, ldb, ldc elements apart)."""
    d = DTYPES[spec.dtype]
    shapes = ([spec.m, spec.k], [spec.k, spec.n], [spec.m, spec.n])
    elements = (element_type(d.a), element_type(d.b), element_type(d.acc))
    if lds is None:
        return [ir.MemRefType.get(shape, e) for shape, e in zip(shapes, elements)]
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    return [ir.MemRefType.get(shape, e, layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[ld, 1]))
            for shape, e, ld in zip(shapes, elements, lds)]


def packed_type(spec: GemmSpec, side: str) -> ir.MemRefType:
    """A (or B) packed by the caller: ceil(M / mr) panels of K x mr (or ceil(N / nr) of K x nr), each
    k-step's mr (nr) values contiguous, zero past the matrix's edge; at a run-time offset."""
    width, extent = (spec.mr, spec.m) if side == "A" else (spec.nr, spec.n)
    d = DTYPES[spec.dtype]
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    return ir.MemRefType.get([-(-extent // width), spec.k, width], element_type(d.a if side == "A" else d.b),
                             layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[spec.k * width, width, 1]))


def declare_kernels(spec: GemmSpec) -> None:
    """Declare the micro-kernels the GEMM calls (at the insertion point: a module's body), once each."""
    d, g = DTYPES[spec.dtype], spec.group
    body = ir.InsertionPoint.current.block
    declared = {op.sym_name.value for op in body.operations if hasattr(op, "sym_name")}
    for depth in spec.kernel_kcs:
        if kernel_symbol(depth) in declared:
            continue
        decl = func.FuncOp(kernel_symbol(depth), ir.FunctionType.get(
            [panel_type(depth // g, spec.mr * g, d.a), panel_type(depth // g, spec.nr * g, d.b),
             c_block_type(spec.mr, spec.nr, d.acc)], []), visibility="private")


def _trap_unless_vector_length(spec: GemmSpec) -> None:
    """The loops and packing are sized for spec.vector_bits: at another length the kernel would compute
    another tile, and write past its block. The length is read as the kernel will see it (SME's
    streaming length with rdsvl, SVE's with vscale) and the call traps on a mismatch."""
    index = ir.IndexType.get()
    if spec.kernel.scalable == "sme":
        words = ir.Operation.create("arm_sme.streaming_vl", results=[index],
                                    attributes={"type_size": ir.Attribute.parse("#arm_sme.type_size<word>")}).result
        bits = arith.muli(words, arith.constant(index, 32))
    else:
        bits = arith.muli(vector.vscale(), arith.constant(index, 128))
    wrong = arith.cmpi(arith.CmpIPredicate.ne, bits, arith.constant(index, spec.vector_bits))
    check = scf.IfOp(wrong)
    with ir.InsertionPoint(check.then_block):
        llvm.Trap()
        scf.YieldOp([])


def build_gemm(spec: GemmSpec, lanes: int) -> ir.Module:
    """`ukl_gemm(A: M x K, B: K x N, C: M x N, lo, hi)` (row-major) and `ukl_gemm_bench(A, B, C, lo, hi, n)`.

    A call computes the rows (split ic, or the direct traversal) or columns (split jc) [lo, hi) of C:
    each thread of a parallel GEMM makes one such call on its share (GemmSpec.partition), with its
    own packing buffers (allocated by the call). `lanes` is the target's native vector length,
    used by the direct traversal.
    """
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        emit_gemm(spec, lanes, GEMM)
    add_bench_loop(module, GEMM, GEMM_BENCH)
    return module


def emit_gemm(spec: GemmSpec, lanes: int, name: str, lds: tuple[int, int, int] | None = None,
              gathers: dict[str, Gather] | None = None, packed: frozenset[str] = frozenset()) -> None:
    """The driver `name(A, B, C, lo, hi)` (and the declarations of its micro-kernels) at the insertion
    point; with `lds`, A, B and C are views into larger matrices (operand_types); an operand in
    `gathers` ("A" or "B") is replaced by its Gather's arguments and read through it while packing;
    one in `packed` comes already packed (packed_type) and is not packed again. Other drivers (a
    convolution's routes) call it like a library GEMM."""
    gathers = gathers or {}
    if spec.traversal == "direct":
        if gathers or packed:
            raise SpecError("the direct traversal reads A and B as matrices: a gathered or packed operand needs "
                            "the packed traversals")
        _emit_direct(spec, lanes, name, lds)
        return
    if packed and spec.group != 1:
        raise SpecError(f"a caller-packed operand takes one k per row: {spec.dtype} groups {spec.group}")
    declare_kernels(spec)
    b_ = _Builder(spec, lds, gathers, packed)
    mc, nc, kc = spec.blocks
    g = spec.group
    elt = b_.elt
    matrices = {**dict(zip("ABC", operand_types(spec, lds))), **{side: packed_type(spec, side) for side in packed}}
    groups = [list(gathers[side].types) if side in gathers else [matrices[side]] for side in "ABC"]
    fn = func.FuncOp(name, ir.FunctionType.get([*(t for group in groups for t in group), b_.index, b_.index], []))
    mark_entry_point(fn, noinline=True)
    entry = fn.add_entry_block()
    with ir.InsertionPoint(entry):
        args = list(entry.arguments)
        operands = []
        for side, group in zip("ABC", groups):
            taken, args = tuple(args[:len(group)]), args[len(group):]
            operands.append(taken if side in gathers else taken[0])
        a, b, c = operands
        lo, hi = args
        if spec.vector_bits is not None:
            _trap_unless_vector_length(spec)
        b_.share(lo, hi)
        align = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 64)
        depth = padded(kc, spec.k_step)
        a_pack = None if "A" in packed else memref.alloc(
            ir.MemRefType.get([mc // spec.mr, depth // g, spec.mr * g], b_.a_elt), [], [], alignment=align)
        b_pack = None if "B" in packed else memref.alloc(
            ir.MemRefType.get([nc // spec.nr, depth // g, spec.nr * g], b_.b_elt), [], [], alignment=align)
        local = memref.alloca(ir.MemRefType.get([spec.mr, spec.nr], elt), [], [], alignment=align)
        jc_loop = b_.loop(b_.n_lo, b_.n_hi, nc)
        with ir.InsertionPoint(jc_loop.body):
            jc = jc_loop.induction_variable
            nc_cur = b_.min(b_.c(nc), arith.subi(b_.n_hi, jc))
            full_k = spec.k - spec.k % kc
            # C = A.B: the first k block (peeled) zeroes each tile of C before its first call.
            first = kc if full_k and not spec.accumulate else 0
            if first:
                b_.k_block(a, b, c, a_pack, b_pack, local, jc, nc_cur, b_.c(0), kc, fresh=True)
            if full_k > first:
                pc_loop = b_.loop(b_.c(first), b_.c(full_k), kc)
                with ir.InsertionPoint(pc_loop.body):
                    b_.k_block(a, b, c, a_pack, b_pack, local, jc, nc_cur, pc_loop.induction_variable, kc,
                               fresh=False)
                    scf.YieldOp([])
            if spec.k % kc:
                b_.k_block(a, b, c, a_pack, b_pack, local, jc, nc_cur, b_.c(full_k), spec.k % kc,
                           fresh=not full_k and not spec.accumulate)
            scf.YieldOp([])
        for buffer in (a_pack, b_pack):
            if buffer is not None:
                memref.dealloc(buffer)
        func.ReturnOp([])


def _emit_direct(spec: GemmSpec, lanes: int, name: str, lds: tuple[int, int, int] | None) -> None:
    """The unpacked loop nest: C in mr x nr register tiles (the micro-kernel's shape) read straight from
    A and B, each k adding an A column's mr values (broadcast) times B's nr-wide row; no packing.
    Columns beyond whole tiles take whole vectors and one masked vector for the tile's rows; rows beyond
    whole tiles go one by one, in blocks of DIRECT_VECTORS vectors, then whole and masked vectors. Low-precision inputs are widened to the accumulator type first (no
    dot-product instruction: this is the plain loop libraries fall back to)."""
    b_ = _Builder(spec, lds)
    elt = b_.elt
    d = DTYPES[spec.dtype]
    vec = ir.VectorType.get([lanes], elt)
    b_vec = ir.VectorType.get([lanes], b_.b_elt)
    types = operand_types(spec, lds)

    def multiply_add(x: ir.Value, y: ir.Value, acc: ir.Value) -> ir.Value:
        return multiply_accumulate(x, y, acc, d.acc.exact)

    def vector_block(a, b, c, rows: list[ir.Value], cols: list[ir.Value], tail: int = 0,
                     b_cols: list[ir.Value] | None = None) -> None:
        """C[rows, cols..cols+lanes) for every row and column vector, kept in registers over k. With
        `tail`, one vector of which only the first `tail` lanes are C's (masked loads and stores: the
        last columns run at vector speed, not one element at a time). B's vectors are read at `b_cols`
        (default: C's columns; a copied strip of B has its own)."""
        b_cols = cols if b_cols is None else b_cols
        mask = None if not tail else vector.create_mask(ir.VectorType.get([lanes], ir.IntegerType.get_signless(1)),
                                                        [b_.c(tail)])

        def load_c(row: ir.Value, col: ir.Value) -> ir.Value:
            if mask is None or not spec.accumulate:
                return b_.zero_or_c(vec, c, row, col, spec.accumulate)
            return vector.maskedload(vec, c, [row, col], mask, vector.broadcast(vec, b_.zero(elt)))
        init = [load_c(row, col) for row in rows for col in cols]
        k_loop = scf.ForOp(b_.c(0), b_.c(spec.k), b_.c(1), init)
        with ir.InsertionPoint(k_loop.body):
            k = k_loop.induction_variable
            b_k = [widen(vector.load(b_vec, b, [k, col]) if mask is None else
                         vector.maskedload(b_vec, b, [k, col], mask, vector.broadcast(b_vec, b_.zero(b_.b_elt))),
                         d.b, vec) for col in b_cols]
            accs = iter(k_loop.inner_iter_args)
            out = []
            for row in rows:
                a_k = vector.broadcast(vec, widen(memref.load(a, [row, k]), d.a, elt))
                out += [multiply_add(a_k, b_kv, next(accs)) for b_kv in b_k]
            scf.YieldOp(out)
        results = iter(k_loop.results)
        for row in rows:
            for col in cols:
                if mask is None:
                    vector.store(next(results), c, [row, col])
                else:
                    vector.maskedstore(c, [row, col], mask, next(results))

    def columns_from(a, b, c, rows: list[ir.Value], start: int) -> None:
        """C[rows, start:n): blocks of DIRECT_VECTORS vectors per row (one row only: a block that wide
        has no registers left for more), then whole vectors and a masked last vector for all rows."""
        width = lanes * DIRECT_VECTORS
        full = start + (spec.n - start) // width * width if len(rows) == 1 else start
        if full > start:
            j_loop = b_.loop(b_.c(start), b_.c(full), width)
            with ir.InsertionPoint(j_loop.body):
                j = j_loop.induction_variable
                vector_block(a, b, c, rows, [b_.add(j, b_.c(u * lanes)) for u in range(DIRECT_VECTORS)])
                scf.YieldOp([])
        whole, tail = divmod(spec.n - full, lanes)
        if whole:
            vector_block(a, b, c, rows, [b_.c(full + u * lanes) for u in range(whole)])
        if tail:
            vector_block(a, b, c, rows, [b_.c(full + whole * lanes)], tail)

    tile_vectors = spec.nr // lanes if spec.nr % lanes == 0 else 0  # 0: no register tiles, rows only
    n_tiles = spec.n - spec.n % spec.nr if tile_vectors else 0
    fn = func.FuncOp(name, ir.FunctionType.get(types + [b_.index, b_.index], []))
    mark_entry_point(fn, noinline=True)
    with ir.InsertionPoint(fn.add_entry_block()):
        a, b, c, lo, hi = fn.entry_block.arguments
        b_.share(lo, hi)
        # Whole mr-row tiles of this share, then its last rows one by one.
        tiles_end = b_.add(b_.m_lo, arith.muli(arith.divui(arith.subi(b_.m_hi, b_.m_lo), b_.c(spec.mr)),
                                               b_.c(spec.mr)))
        if n_tiles and b_.ldb * d.b.bytes % CONFLICT_STRIDE:
            i_loop = b_.loop(b_.m_lo, tiles_end, spec.mr)
            with ir.InsertionPoint(i_loop.body):
                i = i_loop.induction_variable
                rows = [b_.add(i, b_.c(r)) for r in range(spec.mr)]
                j_loop = b_.loop(b_.c(0), b_.c(n_tiles), spec.nr)
                with ir.InsertionPoint(j_loop.body):
                    j = j_loop.induction_variable
                    vector_block(a, b, c, rows, [b_.add(j, b_.c(v * lanes)) for v in range(tile_vectors)])
                    scf.YieldOp([])
                columns_from(a, b, c, rows, n_tiles)
                scf.YieldOp([])
        elif n_tiles:  # B's rows fall into a few cache sets: each tile column reads a contiguous copy
            strip = memref.alloc(ir.MemRefType.get([spec.k, spec.nr], b_.b_elt), [], [],
                                 alignment=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 64))
            j_loop = b_.loop(b_.c(0), b_.c(n_tiles), spec.nr)
            with ir.InsertionPoint(j_loop.body):
                j = j_loop.induction_variable
                copy = b_.loop(b_.c(0), b_.c(spec.k), 1)
                with ir.InsertionPoint(copy.body):
                    k = copy.induction_variable
                    for v in range(tile_vectors):
                        vector.store(vector.load(b_vec, b, [k, b_.add(j, b_.c(v * lanes))]), strip, [k, b_.c(v * lanes)])
                    scf.YieldOp([])
                i_loop = b_.loop(b_.m_lo, tiles_end, spec.mr)
                with ir.InsertionPoint(i_loop.body):
                    rows = [b_.add(i_loop.induction_variable, b_.c(r)) for r in range(spec.mr)]
                    vector_block(a, strip, c, rows, [b_.add(j, b_.c(v * lanes)) for v in range(tile_vectors)],
                                 b_cols=[b_.c(v * lanes) for v in range(tile_vectors)])
                    scf.YieldOp([])
                scf.YieldOp([])
            memref.dealloc(strip)
            if spec.n > n_tiles:
                i_loop = b_.loop(b_.m_lo, tiles_end, spec.mr)
                with ir.InsertionPoint(i_loop.body):
                    rows = [b_.add(i_loop.induction_variable, b_.c(r)) for r in range(spec.mr)]
                    columns_from(a, b, c, rows, n_tiles)
                    scf.YieldOp([])
        rest = b_.loop(tiles_end if n_tiles else b_.m_lo, b_.m_hi, 1)
        with ir.InsertionPoint(rest.body):
            columns_from(a, b, c, [rest.induction_variable], 0)
            scf.YieldOp([])
        func.ReturnOp([])


def widen(value: ir.Value, element, to: ir.Type) -> ir.Value:
    """A low-precision input (an Element's value) converted to the accumulator type `to`."""
    if value.type == to:
        return value
    if not element.exact:
        return arith.extf(to, value)
    return arith.extsi(to, value) if element.signed else arith.extui(to, value)


def multiply_accumulate(x: ir.Value, y: ir.Value, acc: ir.Value, exact: bool) -> ir.Value:
    """acc + x * y: an FMA for floats (vectors), a multiply and an add for integers."""
    if exact:
        return arith.addi(acc, arith.muli(x, y))
    return vector.fma(x, y, acc) if isinstance(acc.type, ir.VectorType) else arith.addf(acc, arith.mulf(x, y))
