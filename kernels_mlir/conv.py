"""A 2-D convolution and the routes that compute it around our GEMM driver and micro-kernels.

The workload (ConvShape): batch N, input H x W with C channels, K filters of R x S, stride, padding
and dilation (the same along both axes), groups (depthwise: groups = C, K = C x multiplier), in
one of two layouts: NHWC with HWCF filters (R, S, C/groups, K), or NCHW with FCHW filters
(K, C/groups, R, S). The operands are stored as the row-major matrices the GEMM view reads:

    NHWC  input (N.H.W) x C      filter (R.S.Cg) x K    output (N.P.Q) x K    out = col(in) . W
    NCHW  input (N.C) x (H.W)    filter K x (Cg.R.S)    output (N.K) x (P.Q)  out_n = W . col(in_n)

Routes (ConvSpec.route):
  im2col          each thread packs the column matrix of its share of the output whole, then our GEMM
  im2col_chunked  rows (NHWC) or pixel columns (NCHW) of the column matrix packed in chunks bounded by
                  `pack_bytes`, one buffer reused (the seed's fix for an unbounded packing buffer)
  igemm           implicit GEMM: no column matrix; an indirection buffer holds, for every output pixel
                  and tap, the input pixel it reads (-1 in the padding: XNNPACK's and KleidiAI's
                  indirection, with row indices for pointers), and the GEMM packs its input operand
                  through it (gemm.Gather)
  direct          register tiles accumulated over every tap and input channel straight from the input
                  and the filter: NHWC mr output pixels x nr output channels, NCHW mr filters x nr
                  pixels of an output row (conv_direct)
  pointwise       a 1x1, stride-1, unpadded convolution is one GEMM on the input as it lies (no packing
                  of the input beyond the GEMM's own)
  depthwise       a dedicated kernel for groups = C = K: vectorized over channels in NHWC, over the output
                  width in NCHW (conv_direct)

The column matrix is built by plain loops (the driver is compiled at O2, so LLVM vectorizes the
contiguous copies): upstream's `convert_conv2d_to_img2col` rewrites a linalg conv into a
linalg.generic im2col plus a matmul over a tensor, which our GEMM driver (memref, packed,
micro-kernel calls) cannot take as its A; a chunk bound has no upstream counterpart.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from mlir import ir
from mlir.dialects import arith, func, memref, scf

from .gemm import DEFAULT_MC, DEFAULT_NC, MAX_THREADS, Gather, GemmSpec, emit_gemm, packed_type
from .conv_direct import (depthwise_filter_hwc, emit_depthwise, emit_depthwise_nchw, emit_direct, emit_direct_nchw,
                          filter_panels)
from .emitter import Emitter
from .harness import add_bench_loop
from .mlir_types import element_type, mark_entry_point
from .operands import GUARD, Guarded, Operands
from .reference import TOLERANCE_SLACK, draw
from .spec import DTYPES, KernelSpec, SpecError

CONV, CONV_BENCH = "ukl_conv", "ukl_conv_bench"
LAYOUTS = ("nhwc", "nchw")
#: Filter layouts each layout takes, its default first: NHWC's HWCF (R, S, Cg, K) or FHWC (K, R, S, Cg),
#: NCHW's FCHW (K, Cg, R, S).
FILTERS = {"nhwc": ("hwcf", "fhwc"), "nchw": ("fchw",)}
ROUTES = ("im2col", "im2col_chunked", "igemm", "direct", "pointwise", "depthwise")
#: Routes whose GEMM reads a packed column matrix.
PACKING_ROUTES = ("im2col", "im2col_chunked")
#: How a route takes the filter (ConvSpec.weights).
WEIGHTS = ("rows", "packed")
#: Routes that compute straight from the input, in tiles of output rows (conv_direct), with no GEMM.
DIRECT_ROUTES = ("direct", "depthwise")
#: A typo guard on every size (a convolution's operands are bounded by memory, checked separately).
MAX_SIZE = 1 << 16


@dataclass(frozen=True)
class ConvShape:
    """What is computed: the convolution's sizes, layout and dtype."""

    n: int
    h: int
    w: int
    c: int
    k: int
    r: int
    s: int
    stride: int = 1
    pad: int = 0
    dilation: int = 1
    groups: int = 1
    layout: str = "nhwc"
    dtype: str = "f32"
    #: The filter's layout, one of FILTERS[layout]; None: the layout's default (left out of workload(), so
    #: the hashes of convolutions stored before there was a choice stay what they were).
    filters: str | None = None

    def __post_init__(self) -> None:
        for name in ("n", "h", "w", "c", "k", "r", "s", "stride", "dilation", "groups"):
            _check_int(name, getattr(self, name), 1)
        _check_int("pad", self.pad, 0)
        if self.layout not in LAYOUTS:
            raise SpecError(f"layout: must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype: must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.filters is not None and self.filters not in FILTERS[self.layout]:
            raise SpecError(f"filters: {self.layout} takes {' or '.join(FILTERS[self.layout])} filters, "
                            f"got {self.filters!r}")
        if self.c % self.groups or self.k % self.groups:
            raise SpecError(f"groups: {self.groups} must divide the input channels ({self.c}) and the "
                            f"filters ({self.k})")
        for axis, size, taps in (("h", self.h, self.r), ("w", self.w, self.s)):
            extent = self.dilation * (taps - 1) + 1
            if size + 2 * self.pad < extent:
                raise SpecError(f"the kernel ({extent} wide with dilation) is larger than the padded input along "
                                f"{axis} ({size} + 2 x {self.pad})")

    @property
    def p(self) -> int:
        return (self.h + 2 * self.pad - self.dilation * (self.r - 1) - 1) // self.stride + 1

    @property
    def q(self) -> int:
        return (self.w + 2 * self.pad - self.dilation * (self.s - 1) - 1) // self.stride + 1

    @property
    def cg(self) -> int:
        return self.c // self.groups

    @property
    def kg(self) -> int:
        return self.k // self.groups

    @property
    def taps(self) -> int:
        """The GEMM view's depth: one output's multiply-adds, R.S.Cg."""
        return self.r * self.s * self.cg

    @property
    def flops(self) -> int:
        return 2 * self.n * self.p * self.q * self.k * self.taps

    @property
    def pointwise(self) -> bool:
        return self.r == self.s == self.stride == 1 and self.pad == 0

    @property
    def depthwise(self) -> bool:
        return self.groups == self.c

    @property
    def fhwc(self) -> bool:
        """The filter is K rows of R.S.Cg: the transpose of HWCF's (R.S.Cg) x K matrix."""
        return self.filters == "fhwc"

    def matrices(self) -> dict[str, tuple[int, int]]:
        """(rows, cols) of the input, filter and output matrices as stored."""
        n, c, k, hw, pq = self.n, self.c, self.k, self.h * self.w, self.p * self.q
        if self.layout == "nhwc":
            return {"A": (n * hw, c), "B": (k, self.taps) if self.fhwc else (self.taps, k), "C": (n * pq, k)}
        return {"A": (n * c, hw), "B": (k, self.taps), "C": (n * k, pq)}

    def workload(self) -> dict:
        data = dataclasses.asdict(self)
        if data["filters"] is None:
            del data["filters"]
        return data


def cannot_take(shape: ConvShape, route: str) -> str | None:
    """Why `route` cannot compute `shape`, or None when it can."""
    if route == "pointwise" and not shape.pointwise:
        return "needs a 1x1 kernel, stride 1 and no padding"
    if route == "direct" and shape.dtype not in ("f32", "f64"):
        return "needs an f32 or f64 convolution (its kernels multiply-add in the accumulator's type)"
    if route == "depthwise" and not (shape.depthwise and shape.dtype in ("f32", "f64")):
        return "needs an f32 or f64 convolution with groups = C (one or more filters per channel)"
    return None


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SIZE:
        raise SpecError(f"{name}: must be an integer between {low} and {MAX_SIZE}, got {value!r}")


@dataclass(frozen=True)
class ConvSpec:
    """A convolution (`shape`) computed by `route` around the micro-kernel `kernel` (its tile, dtype and
    k-blocking kc), with the GEMM's blocking, a packing bound and threads."""

    shape: ConvShape
    route: str = "im2col"
    kernel: KernelSpec = KernelSpec(6, 16, 256)
    mc: int = DEFAULT_MC
    nc: int = DEFAULT_NC
    #: im2col_chunked: bytes of column matrix one thread packs at a time (None: the route's default).
    pack_bytes: int | None = None
    threads: int = 1
    #: A scalable (SVE, SME) micro-kernel's vector length: the GEMM routes are built for it (GemmSpec).
    #: None for fixed-width kernels (left out of to_dict).
    vector_bits: int | None = None
    #: "rows": the filter as stored (shape.filters), packed by the route in every call. "packed": as a
    #: library takes a model's constant weights, packed once when the model is loaded (not timed): NHWC
    #: only, each group's filters in nr-wide panels of R.S.Cg x nr, zero-padded (what the GEMM routes' B
    #: packing and the direct kernel's slice packing make). The depthwise kernel reads its filter as
    #: stored either way. Left out of to_dict when "rows".
    weights: str = "rows"

    def __post_init__(self) -> None:
        if not isinstance(self.shape, ConvShape) or not isinstance(self.kernel, KernelSpec):
            raise SpecError("a convolution needs its shape and a micro-kernel's spec")
        if self.route not in ROUTES:
            raise SpecError(f"route: must be one of {list(ROUTES)}, got {self.route!r}")
        if self.kernel.dtype != self.shape.dtype:
            raise SpecError(f"the micro-kernel is {self.kernel.dtype}, the convolution {self.shape.dtype}")
        why = cannot_take(self.shape, self.route)
        if why:
            raise SpecError(f"route {self.route}: {why}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= MAX_THREADS:
            raise SpecError(f"threads: must be an integer between 1 and {MAX_THREADS}, got {self.threads!r}")
        if self.route == "im2col_chunked":
            if self.pack_bytes is None:
                raise SpecError("route im2col_chunked: needs pack_bytes, the bound on one packed chunk")
            if isinstance(self.pack_bytes, bool) or not isinstance(self.pack_bytes, int) or \
                    self.pack_bytes < self.line_bytes:
                raise SpecError(f"pack_bytes: must hold one line of the column matrix ({self.line_bytes} bytes: "
                                f"{self.shape.taps} {self.dtype} values), got {self.pack_bytes!r}")
        elif self.pack_bytes is not None:
            raise SpecError(f"pack_bytes: only route im2col_chunked takes it (route {self.route})")
        if self.weights not in WEIGHTS:
            raise SpecError(f"weights: must be one of {list(WEIGHTS)}, got {self.weights!r}")
        if self.weights == "packed" and (self.shape.layout != "nhwc" or self.kernel.k_step != 1):
            raise SpecError("weights: \"packed\" panels are NHWC's, one k a step (f32 or f64 kernels); "
                            f"this is {self.shape.layout} with a {self.dtype} kernel")
        if self.kernel.scalable and self.route in DIRECT_ROUTES:
            raise SpecError(f"route {self.route}: builds its own fixed-width vector code; a {self.kernel.scalable} "
                            "kernel runs in the GEMM routes (im2col, im2col_chunked, igemm, pointwise)")
        self.gemms()  # each GEMM's own checks (its blocking against the tile, the vector length)

    dtype = property(lambda self: self.shape.dtype)

    @property
    def line_bytes(self) -> int:
        """One row (NHWC) or pixel column (NCHW) of the column matrix: R.S.Cg input values."""
        return self.shape.taps * DTYPES[self.dtype].a.bytes

    @property
    def lines(self) -> int:
        """Lines of the column matrix one chunk spans: all of the output (NHWC) or an image's pixels (NCHW)."""
        sh = self.shape
        return sh.n * sh.p * sh.q if sh.layout == "nhwc" else sh.p * sh.q

    @property
    def chunk(self) -> int:
        """Lines per packed chunk: a thread's share (im2col), or what pack_bytes holds, in whole register
        tiles when it holds one (im2col_chunked)."""
        unit = self.unit
        if self.route == "im2col":
            shares = self.threads if self.shape.layout == "nhwc" else -(-self.threads // self.shape.n)
            chunk = -(-self.lines // shares)
            return min(self.lines, -(-chunk // unit) * unit)
        fits = self.pack_bytes // self.line_bytes
        return min(self.lines, fits // unit * unit if fits >= unit else fits)

    @property
    def chunks(self) -> int:
        """Chunks over the whole convolution (NCHW: per image, times the batch)."""
        per = -(-self.lines // self.chunk)
        return per if self.shape.layout == "nhwc" else per * self.shape.n

    def gemm(self, lines: int) -> GemmSpec:
        """The GEMM one call makes on `lines` lines of the column matrix (or, pointwise, of the input)."""
        sh = self.shape
        m, n = (lines, sh.kg) if sh.layout == "nhwc" else (sh.kg, lines)
        return GemmSpec(m, n, sh.taps, self.kernel, mc=self.mc, nc=self.nc,
                        split="ic" if sh.layout == "nhwc" else "jc", vector_bits=self.vector_bits)

    def gemms(self) -> dict[int, GemmSpec]:
        """Every GEMM the route calls, by the lines it spans (a chunk, the last chunk's remainder)."""
        sh = self.shape
        if self.route in DIRECT_ROUTES:
            return {}
        if self.route == "pointwise":
            return {0: self.gemm(sh.n * sh.h * sh.w if sh.layout == "nhwc" else sh.h * sh.w)}
        if self.route == "igemm":
            return {0: self.gemm(self.lines)}
        sizes = {self.chunk, self.lines % self.chunk or self.chunk}
        return {size: self.gemm(size) for size in sorted(sizes)}

    @property
    def panels(self) -> bool:
        """The im2col routes pack their column matrix straight into the micro-kernel's panel layout (the
        GEMM then packs it no more): for kernels that take one k at a time; the others (grouped bf16 and int8
        panels, SME's 2- and 4-way outer products) keep a row-major column matrix that the GEMM packs and pads."""
        return self.route in PACKING_ROUTES and self.kernel.k_step == 1

    @property
    def tile(self) -> KernelSpec:
        """The micro-kernel as one call computes it: itself, or a scalable one at vector_bits."""
        return self.kernel.at_length(self.vector_bits)

    @property
    def unit(self) -> int:
        """The column matrix's lines per panel: the micro-kernel's rows (NHWC) or columns (NCHW)."""
        return self.tile.mr if self.shape.layout == "nhwc" else self.tile.nr

    @property
    def kernel_kcs(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(kc for spec in self.gemms().values() for kc in spec.kernel_kcs))

    @property
    def extra_bytes(self) -> int:
        """Memory the route takes beyond the operands, all threads together: column-matrix buffers or
        indirection buffers, and the GEMM's packing buffers (as allocated: counted from the sizes, not
        sampled)."""
        d = DTYPES[self.dtype]
        if self.route in PACKING_ROUTES:
            lines = -(-self.chunk // self.unit) * self.unit if self.panels else self.chunk
            column = lines * self.shape.taps * d.a.bytes
        elif self.route == "igemm":
            column = self.lines * self.shape.r * self.shape.s * 8
        elif self.route == "depthwise" and self.shape.fhwc:  # the filter copied to HWC
            column = self.shape.taps * self.shape.k * d.b.bytes
        elif self.route == "direct" and self.shape.layout == "nhwc" and not self.prepacked:
            # One block of output channels' slice of the filter: nr values a row, in whole vectors (at
            # most 64 bytes each: rounding up to 64 bytes covers every target's vector width).
            column = self.shape.taps * -(-self.kernel.nr * d.a.bytes // 64) * 64
        else:
            column = 0
        a_side = self.panels and self.shape.layout == "nhwc"
        b_side = (self.panels and self.shape.layout == "nchw") or self.prepacked
        packing = max(((0 if a_side else spec.blocks[0] * spec.blocks[2]) +
                       (0 if b_side else spec.blocks[2] * spec.blocks[1]) for spec in self.gemms().values()),
                      default=0) * d.a.bytes
        return self.threads * (column + packing)

    @property
    def flops(self) -> int:
        return self.shape.flops

    def partition(self) -> list[tuple[int, int]]:
        """Each thread's [lo, hi): chunks of the column matrix, for pointwise rows (NHWC) or pixel
        columns (NCHW) in whole register tiles, for depthwise rows of output pixels."""
        if self.route in DIRECT_ROUTES:
            sh = self.shape  # output rows: of every image (NHWC), of every plane or block of mr filters (NCHW)
            per_row = 1 if sh.layout == "nhwc" else sh.k if self.route == "depthwise" else \
                sh.groups * -(-sh.kg // self.kernel.mr)
            rows = sh.n * sh.p * per_row
            bounds = [rows * t // self.threads for t in range(self.threads + 1)]
            return list(zip(bounds, bounds[1:]))
        if self.route in ("pointwise", "igemm"):
            spec = self.gemms()[0]
            return dataclasses.replace(spec, threads=self.threads).partition()
        bounds = [self.chunks * t // self.threads for t in range(self.threads + 1)]
        return list(zip(bounds, bounds[1:]))

    @property
    def bytes_needed(self) -> int:
        """Operands with guards and the snapshots verification keeps, the route's buffers, two
        baselines' float32 copies and outputs, and the float64 reference (conv_reference)."""
        d = DTYPES[self.dtype]
        sizes = {name: rows * cols for name, (rows, cols) in self.matrices().items()}
        if self.prepacked:  # the drawn filter beside its panels, and the logical copy the checks unpack
            sizes["B"] += 2 * self.shape.taps * self.shape.k
        operands = (sizes["A"] + sizes["B"]) * d.a.bytes + sizes["C"] * d.acc.bytes + 6 * GUARD * 8
        baselines = 2 * 4 * (sizes["A"] + sizes["B"] + 2 * sizes["C"])
        return 2 * operands + self.extra_bytes + baselines + reference_bytes(self.shape)

    @property
    def prepacked(self) -> bool:
        """The filter comes packed in panels (weights = "packed", for a route that reads panels)."""
        return self.weights == "packed" and self.route != "depthwise"

    @property
    def filter_panels(self) -> int:
        """Panels of nr filters per group (the last zero-padded)."""
        return -(-self.shape.kg // self.tile.nr)

    def matrices(self) -> dict[str, tuple[int, int]]:
        """(rows, cols) of the input, filter and output as stored: the shape's, with a prepacked filter's
        panels stacked (groups x panels x R.S.Cg rows of nr)."""
        found = self.shape.matrices()
        if self.prepacked:
            found["B"] = (self.shape.groups * self.filter_panels * self.shape.taps, self.tile.nr)
        return found

    def pack_weights(self, b: np.ndarray) -> np.ndarray:
        """The filter (as shape.filters stores it) in the stored form: itself, or its panels."""
        if not self.prepacked:
            return b
        sh, nr, panels = self.shape, self.tile.nr, self.filter_panels
        hwcf = filter_rscf(sh, b).reshape(sh.taps, sh.k)
        padded = np.zeros((sh.groups, sh.taps, panels * nr), dtype=b.dtype)
        padded[:, :, :sh.kg] = hwcf.reshape(sh.taps, sh.groups, sh.kg).transpose(1, 0, 2)
        return np.ascontiguousarray(padded.reshape(sh.groups, sh.taps, panels, nr).transpose(0, 2, 1, 3)
                                    .reshape(self.matrices()["B"]))

    def logical_filter(self, stored: np.ndarray) -> np.ndarray:
        """pack_weights' inverse: the filter as shape.filters stores it (what the reference and ONNX Runtime read)."""
        if not self.prepacked:
            return stored
        sh, nr, panels = self.shape, self.tile.nr, self.filter_panels
        grouped = stored.reshape(sh.groups, panels, sh.taps, nr).transpose(0, 2, 1, 3).reshape(
            sh.groups, sh.taps, panels * nr)[:, :, :sh.kg]
        hwcf = np.ascontiguousarray(grouped.transpose(1, 0, 2).reshape(sh.taps, sh.k))
        return np.ascontiguousarray(hwcf.T) if sh.fhwc else hwcf

    def to_dict(self) -> dict:
        data = {**self.shape.workload(), "route": self.route, "mc": self.mc, "nc": self.nc,
                "pack_bytes": self.pack_bytes, "threads": self.threads}
        if self.vector_bits is not None:
            data["vector_bits"] = self.vector_bits
        if self.weights != "rows":
            data["weights"] = self.weights
        return {**data, **self.kernel.fields()}

    @classmethod
    def from_dict(cls, data: dict) -> "ConvSpec":
        fields = dict(data)
        try:
            own = {k: fields.pop(k) for k in ("mr", "nr", "kc", "k_group", "scalable") if k in fields}
            kernel = KernelSpec.from_fields({**own, "dtype": fields["dtype"]})  # the shape keeps its dtype
            how = {k: fields.pop(k) for k in ("route", "mc", "nc", "pack_bytes", "threads")}
            how["vector_bits"] = fields.pop("vector_bits", None)
            how["weights"] = fields.pop("weights", "rows")
            return cls(ConvShape(**fields), kernel=kernel, **how)
        except (KeyError, TypeError) as exc:
            raise SpecError(f"not a convolution's fields: {exc}") from None

    # --- the Problem protocol (kernels_mlir.problem) ---
    kind = "conv2d"
    entry, bench = CONV, CONV_BENCH

    def workload(self) -> dict:
        return self.shape.workload()

    def operands(self, seed: int) -> Operands:
        rng = np.random.default_rng(seed)
        d = DTYPES[self.dtype]
        elements = {"A": d.a, "B": d.b, "C": d.acc}
        drawn = {name: draw(rng, elements[name], *shape) for name, shape in self.shape.matrices().items()}
        drawn["B"] = self.pack_weights(drawn["B"])
        return Operands({name: Guarded.around(value) for name, value in drawn.items()})

    def expected(self, ops: Operands) -> tuple[np.ndarray, np.ndarray]:
        exact = DTYPES[self.dtype].acc.exact
        b = self.logical_filter(ops.b)
        value = conv_reference(self.shape, ops.a, b, exact)
        if exact:
            return value, np.zeros(value.shape)
        eps = float(np.finfo(DTYPES[self.dtype].acc.numpy).eps)
        magnitude = conv_reference(self.shape, np.abs(ops.a), np.abs(b), False)
        return value, TOLERANCE_SLACK * (self.shape.taps + 1) * eps * magnitude


def to_nhwc(shape: ConvShape, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored input and filter as an (N, H, W, C) array and an (R, S, Cg, K) array (views)."""
    sh = shape
    x = a.reshape(sh.n, sh.h, sh.w, sh.c) if sh.layout == "nhwc" else \
        a.reshape(sh.n, sh.c, sh.h, sh.w).transpose(0, 2, 3, 1)
    return x, filter_rscf(sh, b)


def filter_rscf(shape: ConvShape, b: np.ndarray) -> np.ndarray:
    """The stored filter (HWCF, FHWC or FCHW) as an (R, S, Cg, K) array (a view)."""
    sh = shape
    if sh.layout == "nchw":
        return b.reshape(sh.k, sh.cg, sh.r, sh.s).transpose(2, 3, 1, 0)
    if sh.fhwc:
        return b.reshape(sh.k, sh.r, sh.s, sh.cg).transpose(1, 2, 3, 0)
    return b.reshape(sh.r, sh.s, sh.cg, sh.k)


def conv_reference(shape: ConvShape, a: np.ndarray, b: np.ndarray, exact: bool) -> np.ndarray:
    """The convolution of the stored input `a` by the stored filter `b`, in float64 (int64 when `exact`),
    as the stored output matrix: im2col by strided windows, then one product per group."""
    sh = shape
    wide = np.int64 if exact else np.float64
    x, w = (v.astype(wide) for v in to_nhwc(sh, a, b))
    x = np.pad(x, ((0, 0), (sh.pad, sh.pad), (sh.pad, sh.pad), (0, 0)))
    span_h, span_w = sh.dilation * (sh.r - 1) + 1, sh.dilation * (sh.s - 1) + 1
    out = np.empty((sh.n, sh.p, sh.q, sh.k), dtype=wide)
    for g in range(sh.groups):
        part = x[..., g * sh.cg:(g + 1) * sh.cg]
        windows = np.lib.stride_tricks.sliding_window_view(part, (span_h, span_w), axis=(1, 2))
        windows = windows[:, ::sh.stride, ::sh.stride, :, ::sh.dilation, ::sh.dilation][:, :sh.p, :sh.q]
        out[..., g * sh.kg:(g + 1) * sh.kg] = np.tensordot(windows, w[..., g * sh.kg:(g + 1) * sh.kg],
                                                           axes=([3, 4, 5], [2, 0, 1]))
    if sh.layout == "nhwc":
        return out.reshape(sh.n * sh.p * sh.q, sh.k)
    return out.transpose(0, 3, 1, 2).reshape(sh.n * sh.k, sh.p * sh.q)


def reference_bytes(shape: ConvShape) -> int:
    """What conv_reference takes, twice (values and magnitudes; alive one after the other, counted
    both): widened input (and its padded copy) and filter, the windows one group's product copies,
    the output and its layout copy, and the check's error arrays."""
    sh = shape
    padded = sh.n * (sh.h + 2 * sh.pad) * (sh.w + 2 * sh.pad) * sh.c
    inputs = sh.n * sh.h * sh.w * sh.c + padded + sh.taps * sh.k
    windows = sh.n * sh.p * sh.q * sh.taps
    outputs = sh.n * sh.p * sh.q * sh.k
    return 2 * 8 * (inputs + windows + 4 * outputs) + 8 * 7 * outputs


def build_conv(spec: ConvSpec, lanes: int) -> ir.Module:
    """`ukl_conv(A, B, C, lo, hi)` computing the share [lo, hi) (ConvSpec.partition) of the convolution,
    its GEMM drivers, and `ukl_conv_bench(A, B, C, lo, hi, n)`."""
    sh = spec.shape
    e = Emitter()
    d = DTYPES[spec.dtype]
    module = ir.Module.create()
    mats = spec.matrices()
    types = [ir.MemRefType.get(list(mats[name]), element_type(elt)) for name, elt in (("A", d.a), ("B", d.b),
                                                                                       ("C", d.acc))]
    with ir.InsertionPoint(module.body):
        names = {}
        gathers = {**(_indirect(spec, types[0]) if spec.route == "igemm" else {}),
                   **(_transposed_filter(spec) if sh.fhwc and not spec.prepacked else {})}
        packed = frozenset((() if not spec.panels else ("A",) if sh.layout == "nhwc" else ("B",)) +
                           (("B",) if spec.prepacked else ()))
        for lines, gemm in spec.gemms().items():
            names[lines] = f"ukl_conv_gemm_{lines}"
            emit_gemm(gemm, lanes, names[lines], _lds(spec, lines), gathers, packed)
        fn = func.FuncOp(CONV, ir.FunctionType.get([*types, e.index, e.index], []))
        mark_entry_point(fn, noinline=True)
        with ir.InsertionPoint(fn.add_entry_block()):
            a, b, c, lo, hi = fn.entry_block.arguments
            if spec.route == "depthwise" and sh.fhwc:
                hwc = depthwise_filter_hwc(spec, e, b)
                emit_depthwise(spec, e, lanes, a, hwc, c, lo, hi)
                memref.dealloc(hwc)
            elif spec.route == "depthwise":
                (emit_depthwise if sh.layout == "nhwc" else emit_depthwise_nchw)(spec, e, lanes, a, b, c, lo, hi)
            elif spec.route == "direct":
                (emit_direct if sh.layout == "nhwc" else emit_direct_nchw)(spec, e, lanes, a, b, c, lo, hi)
            elif spec.route == "pointwise":
                _pointwise(spec, e, names[0], a, b, c, lo, hi)
            elif spec.route == "igemm":
                _implicit(spec, e, names[0], a, b, c, lo, hi)
            else:
                _packed(spec, e, names, a, b, c, lo, hi)
            func.ReturnOp([])
    add_bench_loop(module, CONV, CONV_BENCH)
    return module


def _lds(spec: ConvSpec, lines: int) -> tuple[int, int, int]:
    """Leading dimensions of the GEMM's A, B and C as the route hands them over."""
    sh = spec.shape
    if spec.route == "pointwise":
        return (sh.c, sh.k, sh.k) if sh.layout == "nhwc" else (sh.taps, sh.h * sh.w, sh.h * sh.w)
    if spec.route == "igemm":  # the gathered operand's leading dimension is unused
        return (sh.taps, sh.k, sh.k) if sh.layout == "nhwc" else (sh.taps, sh.p * sh.q, sh.p * sh.q)
    if sh.layout == "nhwc":  # A: the chunk buffer's rows; B, C: one group's columns
        return sh.taps, sh.k, sh.k
    return sh.taps, spec.chunk, sh.p * sh.q  # A: one group's filters; B: the chunk buffer; C: an image's rows


def _call(name: str, args: list[ir.Value]) -> None:
    func.CallOp([], ir.FlatSymbolRefAttr.get(name), args)


def _pointwise(spec: ConvSpec, e: Emitter, gemm: str, a, b, c, lo, hi) -> None:
    """One GEMM per group (and per image in NCHW) on the operands as they lie; [lo, hi) are rows of the
    output (NHWC) or pixel columns of every image (NCHW)."""
    sh = spec.shape
    hw = sh.h * sh.w
    groups = e.loop(0, sh.groups)
    with ir.InsertionPoint(groups.body):
        g = groups.induction_variable
        if sh.layout == "nhwc":
            _call(gemm, [e.view(a, [0, e.mul(g, sh.cg)], [sh.n * hw, sh.cg], sh.c), _filter(spec, e, b, g),
                         e.view(c, [0, e.mul(g, sh.kg)], [sh.n * hw, sh.kg], sh.k), lo, hi])
        else:
            images = e.loop(0, sh.n)
            with ir.InsertionPoint(images.body):
                i = images.induction_variable
                _call(gemm, [e.view(b, [e.mul(g, sh.kg), 0], [sh.kg, sh.cg], sh.cg),
                             e.view(a, [e.add(e.mul(i, sh.c), e.mul(g, sh.cg)), 0], [sh.cg, hw], hw),
                             e.view(c, [e.add(e.mul(i, sh.k), e.mul(g, sh.kg)), 0], [sh.kg, hw], hw), lo, hi])
                scf.YieldOp([])
        scf.YieldOp([])


def _indirect(spec: ConvSpec, input_type: ir.Type) -> dict[str, Gather]:
    """The igemm's input operand (A in NHWC, B in NCHW): read through the indirection buffer. Its
    arguments: the input, the buffer (lines x R.S input pixels, -1 in the padding), and the first
    input channel (NHWC: of the group) or input row (NCHW: of the image and group)."""
    sh = spec.shape
    index = ir.IndexType.get()
    taps = sh.r * sh.s
    indirection = ir.MemRefType.get([spec.lines, taps], index)
    e = Emitter()

    def element(x, pixels, start, line: ir.Value, tap: ir.Value, channel: ir.Value) -> ir.Value:
        pixel = memref.load(pixels, [line, tap])
        valid = arith.cmpi(arith.CmpIPredicate.sge, pixel, e.c(0))
        clamped = arith.select(valid, pixel, e.c(0))
        where = [clamped, arith.addi(start, channel)] if sh.layout == "nhwc" else [arith.addi(start, channel), clamped]
        value = memref.load(x, where)
        return arith.select(valid, value, _zero(value.type))

    if sh.layout == "nhwc":  # A(m, (r.S + s).Cg + ci)
        def read(args, row, col):
            return element(*args, row, arith.divui(col, e.c(sh.cg)), arith.remui(col, e.c(sh.cg)))
        return {"A": Gather((input_type, indirection, index), read)}

    def read_b(args, row, col):  # B((ci.R + r).S + s, j)
        return element(*args, col, arith.remui(row, e.c(taps)), arith.divui(row, e.c(taps)))
    return {"B": Gather((input_type, indirection, index), read_b)}


def _transposed_filter(spec: ConvSpec) -> dict[str, Gather]:
    """An FHWC filter as the NHWC GEMM's B (taps x Kg): read transposed from its Kg rows of the group,
    element by element while the GEMM packs B (which it does once per block anyway)."""
    sh = spec.shape
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    rows = ir.MemRefType.get([sh.kg, sh.taps], element_type(DTYPES[spec.dtype].b),
                             layout=ir.StridedLayoutAttr.get(offset=dyn, strides=[sh.taps, 1]))
    return {"B": Gather((rows,), lambda args, row, col: memref.load(args[0], [col, row]))}


def _filter(spec: ConvSpec, e: Emitter, b, g) -> ir.Value:
    """Group g's filter as the NHWC GEMM's B: HWCF's taps x Kg columns, FHWC's Kg rows (_transposed_filter),
    or prepacked, the group's panels (a caller-packed B)."""
    sh = spec.shape
    if spec.prepacked:
        return filter_panels(spec, b, e.mul(g, spec.filter_panels), packed_type(spec.gemm(1), "B"))
    if sh.fhwc:
        return e.view(b, [e.mul(g, sh.kg), 0], [sh.kg, sh.taps], sh.taps)
    return e.view(b, [0, e.mul(g, sh.kg)], [sh.taps, sh.kg], sh.k)


def _implicit(spec: ConvSpec, e: Emitter, gemm: str, a, b, c, lo, hi) -> None:
    """Fill this share's lines of the indirection buffer, then one GEMM per group (and image, NCHW)."""
    sh = spec.shape
    taps, pq = sh.r * sh.s, sh.p * sh.q
    buffer = memref.alloc(ir.MemRefType.get([spec.lines, taps], e.index), [], [])
    lines = e.loop(lo, hi)
    with ir.InsertionPoint(lines.body):
        line = lines.induction_variable
        image, pixel = arith.divui(line, e.c(pq)), arith.remui(line, e.c(pq))
        h0 = arith.subi(e.mul(arith.divui(pixel, e.c(sh.q)), sh.stride), e.c(sh.pad))
        w0 = arith.subi(e.mul(arith.remui(pixel, e.c(sh.q)), sh.stride), e.c(sh.pad))
        # NHWC: a row of the (N.H.W) x C input; NCHW: a column of an image's (C x H.W) planes.
        first = e.mul(image, sh.h) if sh.layout == "nhwc" else e.c(0)
        for r in range(sh.r):
            h = arith.addi(h0, e.c(r * sh.dilation))
            for s in range(sh.s):
                w = arith.addi(w0, e.c(s * sh.dilation))
                inside = arith.andi(e.inside(h, sh.h), e.inside(w, sh.w))
                where = e.add(e.mul(arith.addi(first, h), sh.w), w)
                memref.store(arith.select(inside, where, e.c(-1)), buffer, [line, e.c(r * sh.s + s)])
        scf.YieldOp([])
    groups = e.loop(0, sh.groups)
    with ir.InsertionPoint(groups.body):
        g = groups.induction_variable
        if sh.layout == "nhwc":
            _call(gemm, [a, buffer, e.mul(g, sh.cg), _filter(spec, e, b, g),
                         e.view(c, [0, e.mul(g, sh.kg)], [spec.lines, sh.kg], sh.k), lo, hi])
        else:
            images = e.loop(0, sh.n)
            with ir.InsertionPoint(images.body):
                i = images.induction_variable
                _call(gemm, [e.view(b, [e.mul(g, sh.kg), 0], [sh.kg, sh.taps], sh.taps),
                             a, buffer, e.add(e.mul(i, sh.c), e.mul(g, sh.cg)),
                             e.view(c, [e.add(e.mul(i, sh.k), e.mul(g, sh.kg)), 0], [sh.kg, pq], pq), lo, hi])
                scf.YieldOp([])
        scf.YieldOp([])
    memref.dealloc(buffer)


def _packed(spec: ConvSpec, e: Emitter, gemms: dict[int, str], a, b, c, lo, hi) -> None:
    """Chunks [lo, hi) of the column matrix: for each, and each group, pack it, then one GEMM."""
    sh = spec.shape
    chunk, taps = spec.chunk, sh.taps
    elt = ir.MemRefType(a.type).element_type
    align = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 64)
    if spec.panels:
        shape = [-(-chunk // spec.unit), taps, spec.unit]
    else:
        shape = [chunk, taps] if sh.layout == "nhwc" else [taps, chunk]
    buffer = memref.alloc(ir.MemRefType.get(shape, elt), [], [], alignment=align)
    per_image = -(-spec.lines // chunk)
    chunks = e.loop(lo, hi)
    with ir.InsertionPoint(chunks.body):
        index = chunks.induction_variable
        if sh.layout == "nhwc":
            image, first = None, arith.muli(index, e.c(chunk))
        else:
            image = arith.divui(index, e.c(per_image))
            first = arith.muli(arith.remui(index, e.c(per_image)), e.c(chunk))
        rest = spec.lines % chunk
        full = arith.cmpi(arith.CmpIPredicate.sle, arith.addi(first, e.c(chunk)), e.c(spec.lines))
        groups = e.loop(0, sh.groups)
        with ir.InsertionPoint(groups.body):
            g = groups.induction_variable
            if not rest:
                _chunk(spec, e, gemms[chunk], chunk, a, b, c, buffer, image, first, g)
            else:
                branch = scf.IfOp(full, has_else=True)
                with ir.InsertionPoint(branch.then_block):
                    _chunk(spec, e, gemms[chunk], chunk, a, b, c, buffer, image, first, g)
                    scf.YieldOp([])
                with ir.InsertionPoint(branch.else_block):
                    _chunk(spec, e, gemms[rest], rest, a, b, c, buffer, image, first, g)
                    scf.YieldOp([])
            scf.YieldOp([])
        scf.YieldOp([])
    memref.dealloc(buffer)


def _chunk(spec: ConvSpec, e: Emitter, gemm: str, lines: int, a, b, c, buffer, image, first, g) -> None:
    """Pack `lines` lines of group g's column matrix from line `first` (of `image`, NCHW), then multiply."""
    sh = spec.shape
    taps, pq = sh.taps, sh.p * sh.q
    put = _panel_store(spec, e, buffer, lines) if spec.panels else None
    if sh.layout == "nhwc":
        _pack_rows(sh, e, a, buffer, first, lines, g, put)
        column = _panels(spec, e, buffer, lines) if spec.panels else e.view(buffer, [0, 0], [lines, taps], taps)
        _call(gemm, [column, _filter(spec, e, b, g),
                     e.view(c, [first, e.mul(g, sh.kg)], [lines, sh.kg], sh.k), e.c(0), e.c(lines)])
    else:
        _pack_columns(sh, e, a, buffer, image, first, lines, g, put)
        column = _panels(spec, e, buffer, lines) if spec.panels else \
            e.view(buffer, [0, 0], [taps, lines], spec.chunk)
        _call(gemm, [e.view(b, [e.mul(g, sh.kg), 0], [sh.kg, taps], taps), column,
                     e.view(c, [e.add(e.mul(image, sh.k), e.mul(g, sh.kg)), first], [sh.kg, lines], pq),
                     e.c(0), e.c(lines)])


def _panel_store(spec: ConvSpec, e: Emitter, buffer, lines: int):
    """`put(value, line, kk)` storing element kk of a line into its panel (buffer[line / unit, kk, line %
    unit]); the lines past `lines` in the last panel are zeroed now (the micro-kernel reads whole panels)."""
    unit, taps = spec.unit, spec.shape.taps
    if lines % unit:
        elt = ir.MemRefType(buffer.type).element_type
        pad = e.loop(lines, -(-lines // unit) * unit)
        with ir.InsertionPoint(pad.body):
            line = pad.induction_variable
            where = [arith.divui(line, e.c(unit)), None, arith.remui(line, e.c(unit))]
            depth = e.loop(0, taps)
            with ir.InsertionPoint(depth.body):
                memref.store(_zero(elt), buffer, [where[0], depth.induction_variable, where[2]])
                scf.YieldOp([])
            scf.YieldOp([])

    def put(value, line, kk) -> None:
        memref.store(value, buffer, [arith.divui(line, e.c(unit)), kk, arith.remui(line, e.c(unit))])
    return put


def _panels(spec: ConvSpec, e: Emitter, buffer, lines: int) -> ir.Value:
    """The panels holding `lines` lines, typed as the GEMM's caller-packed operand."""
    gemm = spec.gemm(lines)
    side = "A" if spec.shape.layout == "nhwc" else "B"
    view = memref.subview(buffer, [0, 0, 0], [-(-lines // spec.unit), spec.shape.taps, spec.unit], [1, 1, 1])
    return memref.cast(packed_type(gemm, side), view)


def _zero(elt: ir.Type) -> ir.Value:
    return arith.constant(elt, 0 if isinstance(elt, ir.IntegerType) else 0.0)


def _pack_rows(sh: ConvShape, e: Emitter, a, buffer, first, lines: int, g, put=None) -> None:
    """NHWC: buffer[i, (r.S + s).Cg + ci] = input pixel of output row first + i shifted by tap (r, s),
    channel g.Cg + ci, or 0 in the padding: one contiguous copy of Cg channels per tap (or through
    `put`, into panels)."""
    elt = ir.MemRefType(a.type).element_type
    put = put or (lambda value, line, kk: memref.store(value, buffer, [line, kk]))
    rows = e.loop(0, lines)
    with ir.InsertionPoint(rows.body):
        i = rows.induction_variable
        m = arith.addi(first, i)
        image, pixel = arith.divui(m, e.c(sh.p * sh.q)), arith.remui(m, e.c(sh.p * sh.q))
        h0 = arith.subi(e.mul(arith.divui(pixel, e.c(sh.q)), sh.stride), e.c(sh.pad))
        w0 = arith.subi(e.mul(arith.remui(pixel, e.c(sh.q)), sh.stride), e.c(sh.pad))
        channel0 = e.mul(g, sh.cg)
        for r in range(sh.r):
            h = arith.addi(h0, e.c(r * sh.dilation))
            for s in range(sh.s):
                w = arith.addi(w0, e.c(s * sh.dilation))
                column = (r * sh.s + s) * sh.cg
                branch = scf.IfOp(arith.andi(e.inside(h, sh.h), e.inside(w, sh.w)), has_else=True)
                with ir.InsertionPoint(branch.then_block):
                    source = e.add(e.mul(arith.addi(e.mul(image, sh.h), h), sh.w), w)
                    copy = e.loop(0, sh.cg)
                    with ir.InsertionPoint(copy.body):
                        ci = copy.induction_variable
                        value = memref.load(a, [source, arith.addi(channel0, ci)])
                        put(value, i, arith.addi(e.c(column), ci))
                        scf.YieldOp([])
                    scf.YieldOp([])
                with ir.InsertionPoint(branch.else_block):
                    zeros = e.loop(0, sh.cg)
                    with ir.InsertionPoint(zeros.body):
                        put(_zero(elt), i, arith.addi(e.c(column), zeros.induction_variable))
                        scf.YieldOp([])
                    scf.YieldOp([])
        scf.YieldOp([])


def _pack_columns(sh: ConvShape, e: Emitter, a, buffer, image, first, lines: int, g, put=None) -> None:
    """NCHW: buffer[(ci.R + r).S + s, j] = input channel g.Cg + ci of `image` at output pixel first + j
    shifted by tap (r, s), or 0 in the padding: a row of pixels per tap, clamped loads selected (or
    through `put`, into panels)."""
    elt = ir.MemRefType(a.type).element_type
    put = put or (lambda value, line, kk: memref.store(value, buffer, [kk, line]))
    channels = e.loop(0, sh.cg)
    with ir.InsertionPoint(channels.body):
        ci = channels.induction_variable
        plane = e.add(e.mul(image, sh.c), e.mul(g, sh.cg), ci)
        for r in range(sh.r):
            for s in range(sh.s):
                row = e.add(e.mul(ci, sh.r * sh.s), e.c(r * sh.s + s))
                pixels = e.loop(0, lines)
                with ir.InsertionPoint(pixels.body):
                    j = pixels.induction_variable
                    pixel = arith.addi(first, j)
                    h = arith.addi(e.mul(arith.divui(pixel, e.c(sh.q)), sh.stride), e.c(r * sh.dilation - sh.pad))
                    w = arith.addi(e.mul(arith.remui(pixel, e.c(sh.q)), sh.stride), e.c(s * sh.dilation - sh.pad))
                    inside = arith.andi(e.inside(h, sh.h), e.inside(w, sh.w))
                    clamped = arith.select(inside, e.add(e.mul(h, sh.w), w), e.c(0))
                    value = arith.select(inside, memref.load(a, [plane, clamped]), _zero(elt))
                    put(value, j, row)
                    scf.YieldOp([])
        scf.YieldOp([])
