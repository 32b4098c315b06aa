"""The routes that compute straight from the input, with no column matrix and no packing: `depthwise`
(groups = C, one filter per channel), in NHWC vectorized over channels, in NCHW along each output
row, instead of the generic im2col GEMM whose depth would be R.S (the slow path the second seed
found); and `direct` (NHWC, any groups), the same tiles with the input channels reduced inside.

out[n, p, q, c] = sum over taps (r, s) of in[n, p.stride - pad + r.dil, q.stride - pad + s.dil, c] . f[r, s, c]

The register tile is the micro-kernel's: mr output pixels along a row times nr channels (nr / lanes
vectors), accumulated over every tap, then stored once. A row's taps that fall in the padding are
left out by the bounds of the r loop (computed per output row); along the width, the pixels whose
taps all lie inside the input are tiled, and the few border pixels each take their own static
range of s. Channels beyond whole nr blocks take whole vectors and one masked vector.

Upstream's route to a depthwise kernel (`linalg.depthwise_conv_2d_nhwc_hwc`, decomposed to 1-D and
vectorized with flattening) keeps the padding outside the op (a padded copy of the input, or
`tensor.pad` masks); this builder reads the input as it lies and skips padded taps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from mlir import ir
from mlir.dialects import arith, memref, scf, vector

from .emitter import Emitter
from .spec import SpecError

if TYPE_CHECKING:
    from .conv import ConvShape, ConvSpec


def emit_depthwise(spec: "ConvSpec", e: Emitter, lanes: int, a, b, c, lo, hi) -> None:
    """Output rows [lo, hi) of the N.P rows (threads split rows): per tap, each pixel's input vector
    of channels times the tap's filter vector. With a channel multiplier m (K = m.C), output channel o
    reads input channel o / m: a vector of lanes / m input channels, each repeated m times by a shuffle
    (a gather where m does not divide the lanes, or for the masked last vector)."""
    def tap(accs, r, s, pixels, channels):
        f_row = arith.addi(e.mul(r, spec.shape.s), e.c(s))
        weights = [load(b, f_row, col, mask) for col, mask in channels]
        for i, in_row in pixels:
            for j, (col, mask) in enumerate(channels):
                k = i * len(channels) + j
                accs[k] = vector.fma(inputs(a, in_row, col, mask), weights[j], accs[k])
        return accs

    load = _loader(a, lanes)
    multiplier = spec.shape.kg
    inputs = load if multiplier == 1 else _repeating_loader(a, lanes, multiplier, e)
    emit_nhwc_tiles(spec, e, lanes, c, lo, hi, spec.shape.k, e.c(0), tap)


def _gather_parts(memory, lanes: int, step: int):
    """What a gather of `lanes` elements of `memory` takes: the vector type, lane i's offset i.step,
    zeros for the lanes masked off, and the all-true mask."""
    elt = ir.MemRefType(memory.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    ivec = ir.VectorType.get([lanes], ir.IndexType.get())
    offsets = arith.constant(ivec, ir.DenseElementsAttr.get(np.arange(lanes, dtype=np.int64) * step, type=ivec))
    zero = arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt)))
    every = vector.constant_mask(ir.VectorType.get([lanes], ir.IntegerType.get_signless(1)), [lanes])
    return vec, offsets, zero, every


def _repeating_loader(memory, lanes: int, multiplier: int, e: Emitter):
    """`load(memory, row, col, mask)` of elements (col + i) / multiplier of a row, i < lanes (masked: zeros beyond)."""
    vec, iota, zero, every = _gather_parts(memory, lanes, 1)
    elt = vec.element_type
    ivec = ir.VectorType(iota.type)
    repeat = [i // multiplier for i in range(lanes)]

    def load(source, row, col, mask) -> ir.Value:
        if mask is None and lanes % multiplier == 0:  # col is a multiple of the lanes: of the multiplier too
            part = vector.load(ir.VectorType.get([lanes // multiplier], elt), source,
                               [row, arith.divui(col, e.c(multiplier))])
            return vector.shuffle(part, part, repeat)
        channels = arith.divui(arith.addi(vector.broadcast(ivec, col), iota),
                               vector.broadcast(ivec, e.c(multiplier)))
        return vector.gather(vec, source, [row, e.c(0)], channels, every if mask is None else mask, zero)
    return load


#: A row narrower than this many tiles is cut into static tiles only, border pixels included (each pixel
#: with its own taps); a longer one loops over the tiles between its static ends.
SHORT_ROW_TILES = 3


def emit_nhwc_tiles(spec: "ConvSpec", e: Emitter, lanes: int, c, lo, hi, channels_out: int, first_channel,
                    tap, channels_outside: bool = False, before_channels=None) -> None:
    """The skeleton of the NHWC kernels (depthwise, direct): output rows [lo, hi) of the N.P rows, each
    cut into tiles of up to mr pixels (static ones at the ends, each border pixel with the taps that lie
    inside the input; a loop over whole tiles between them) times nr/lanes vectors of `channels_out`
    output channels from `first_channel` (whole vectors, then a masked one); `tap(accs, r, s, pixels,
    channels)` adds tap (r, s) for (index, input row) pixels and (column, mask) channel vectors. Rows
    whose taps fall in the padding are left out by the r loop's bounds. With `channels_outside`, each block of output channels sweeps every row (its slice
    of the filter stays in cache across the rows: the direct kernel's), after `before_channels(channels)`
    (which may pack that slice); else each row sweeps the blocks."""
    sh, mr = spec.shape, spec.kernel.mr
    vectors = max(1, -(-spec.kernel.nr // lanes))
    elt = ir.MemRefType(c.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    mask_type = ir.VectorType.get([lanes], ir.IntegerType.get_signless(1))
    # Pixels whose every tap along the width lies inside the input: [inner_lo, inner_hi).
    inner_lo = min(sh.q, -(-sh.pad // sh.stride))
    inner_hi = max(inner_lo, min(sh.q, (sh.w - 1 - (sh.s - 1) * sh.dilation + sh.pad) // sh.stride + 1))
    full_channels = channels_out - channels_out % (lanes * vectors)
    whole, tail = divmod(channels_out - full_channels, lanes)

    def taps_inside(q: int) -> range:
        """The s whose input pixel lies inside the row, for output pixel q."""
        inside = [s for s in range(sh.s) if 0 <= q * sh.stride - sh.pad + s * sh.dilation < sh.w]
        return range(inside[0], inside[-1] + 1) if inside else range(0)

    def channel_sets(emit) -> None:
        """emit(channels) for every set of channel vectors: whole blocks in a loop, then the rest."""
        if full_channels:
            channel_loop = e.loop(0, full_channels, lanes * vectors)
            with ir.InsertionPoint(channel_loop.body):
                c0 = arith.addi(first_channel, channel_loop.induction_variable)
                emit([(arith.addi(c0, e.c(v * lanes)), None) for v in range(vectors)])
                scf.YieldOp([])
        rest = [(arith.addi(first_channel, e.c(full_channels + v * lanes)), None) for v in range(whole)]
        if tail:
            rest.append((arith.addi(first_channel, e.c(full_channels + whole * lanes)),
                         vector.create_mask(mask_type, [e.c(tail)])))
        if rest:
            emit(rest)

    def make_block(h0, r_lo, r_hi, in_row0, out_row0):
        """`block(qs, s_ranges, channels)` for one output row (h0: its first input row, [r_lo, r_hi) its taps
        inside the input, in_row0 its image's first input row, out_row0 its first output pixel)."""
        def block(qs: list, s_ranges: list[range], channels: list[tuple[ir.Value, ir.Value | None]]) -> None:
            """Pixels `qs` (index values) x channel vectors (offset, mask), over taps r in [r_lo, r_hi)
            and each pixel's s range; then stored."""
            zero = arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt)))
            r_loop = scf.ForOp(r_lo, r_hi, e.c(1), [zero] * (len(qs) * len(channels)))
            with ir.InsertionPoint(r_loop.body):
                r = r_loop.induction_variable
                in_row = e.mul(arith.addi(in_row0, arith.addi(h0, e.mul(r, sh.dilation))), sh.w)
                accs = list(r_loop.inner_iter_args)
                for s in range(sh.s):
                    pixels = [(i, arith.addi(in_row, arith.addi(e.mul(q, sh.stride),
                                                                e.c(s * sh.dilation - sh.pad))))
                              for i, (q, s_range) in enumerate(zip(qs, s_ranges)) if s in s_range]
                    if pixels:
                        accs = tap(accs, r, s, pixels, channels)
                scf.YieldOp(accs)
            results = iter(r_loop.results)
            for q in qs:
                for col, mask in channels:
                    value, out_row = next(results), arith.addi(out_row0, q)
                    if mask is None:
                        vector.store(value, c, [out_row, col])
                    else:
                        vector.maskedstore(c, [out_row, col], mask, value)
        return block

    def flat_pixels(each_tile) -> None:
        """A 1x1, stride-1, unpadded layer: rows [lo, hi) are pixels [lo.Q, hi.Q) of one long row of the
        (N.H.W) x C input, tiled across rows (a 7x7 layer is 49 pixels: 8 whole tiles and one pixel, not
        7 rows of 4 + 3)."""
        first, last = e.mul(lo, sh.q), e.mul(hi, sh.q)
        block = make_block(e.c(0), e.c(0), e.c(1), e.c(0), e.c(0))
        whole_end = arith.addi(first, e.mul(arith.divui(arith.subi(last, first), e.c(mr)), mr))
        tiles = scf.ForOp(first, whole_end, e.c(mr))
        with ir.InsertionPoint(tiles.body):
            q0 = tiles.induction_variable
            each_tile(block, [arith.addi(q0, e.c(i)) for i in range(mr)], [range(1)] * mr)
            scf.YieldOp([])
        rest = scf.ForOp(whole_end, last, e.c(1))
        with ir.InsertionPoint(rest.body):
            each_tile(block, [rest.induction_variable], [range(1)])
            scf.YieldOp([])

    def rows_loop(each_tile) -> None:
        """For every row of [lo, hi): each_tile(block, qs, s_ranges) over its pixel tiles."""
        if sh.pointwise:
            flat_pixels(each_tile)
            return
        rows = e.loop(lo, hi)
        with ir.InsertionPoint(rows.body):
            row = rows.induction_variable
            image, p = arith.divui(row, e.c(sh.p)), arith.remui(row, e.c(sh.p))
            h0 = arith.subi(e.mul(p, sh.stride), e.c(sh.pad))
            # r such that 0 <= h0 + r.dil < H: [ceil(-h0 / dil), floor((H - 1 - h0) / dil) + 1), within [0, R).
            r_lo = arith.maxsi(e.c(0), arith.ceildivsi(arith.subi(e.c(0), h0), e.c(sh.dilation)))
            r_hi = arith.minsi(e.c(sh.r), arith.addi(arith.floordivsi(arith.subi(e.c(sh.h - 1), h0),
                                                                      e.c(sh.dilation)), e.c(1)))
            block = make_block(h0, r_lo, r_hi, e.mul(image, sh.h), e.mul(row, sh.q))

            def static_tiles(first: int, last: int) -> None:
                """Pixels [first, last) in as few tiles as mr allows, as even as they can be (7 pixels are
                4 + 3, not 6 + 1: a one-pixel tile has nr / lanes accumulator chains, too few to cover the
                FMA latency), each pixel with its own taps."""
                count = last - first
                if count <= 0:
                    return
                tiles = -(-count // mr)
                bounds = [first + count * t // tiles for t in range(tiles + 1)]
                for start, end in zip(bounds, bounds[1:]):
                    each_tile(block, [e.c(q) for q in range(start, end)], [taps_inside(q) for q in range(start, end)])

            if sh.q < SHORT_ROW_TILES * mr:  # a short row: static tiles only
                static_tiles(0, sh.q)
                scf.YieldOp([])
                return
            # A border pixel joins the first whole tile; the loop's tiles have every tap inside; what is left
            # at the end (with the last loop tile when fewer than mr pixels would be) is static again.
            left = min(sh.q, inner_lo + mr if inner_lo else 0)
            whole = max(0, (inner_hi - left) // mr)
            if whole and 0 < sh.q - (left + whole * mr) < mr:
                whole -= 1
            static_tiles(0, left)
            if whole:
                tiles = e.loop(left, left + whole * mr, mr)
                with ir.InsertionPoint(tiles.body):
                    q0 = tiles.induction_variable
                    each_tile(block, [arith.addi(q0, e.c(i)) for i in range(mr)], [range(sh.s)] * mr)
                    scf.YieldOp([])
            static_tiles(left + whole * mr, sh.q)
            scf.YieldOp([])

    if channels_outside:
        def sweep(channels) -> None:
            if before_channels is not None:
                before_channels(channels)
            rows_loop(lambda block, qs, s_ranges: block(qs, s_ranges, channels))
        channel_sets(sweep)
    else:
        rows_loop(lambda block, qs, s_ranges: channel_sets(lambda channels: block(qs, s_ranges, channels)))


def _zero_attr(elt: ir.Type) -> ir.Attribute:
    return ir.FloatAttr.get(elt, 0.0)


def _loader(memory, lanes: int):
    """`load(memory, row, col, mask)`: a vector of `lanes` elements, masked (zeros beyond) when `mask`."""
    elt = ir.MemRefType(memory.type).element_type
    vec = ir.VectorType.get([lanes], elt)

    def load(source, row, col, mask) -> ir.Value:
        if mask is None:
            return vector.load(vec, source, [row, col])
        return vector.maskedload(vec, source, [row, col], mask,
                                 arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt))))
    return load


def filter_panels(spec: "ConvSpec", b, first: ir.Value, typ: ir.MemRefType) -> ir.Value:
    """The prepacked filter's panels from panel `first` on (groups x panels of R.S.Cg x nr, stacked), as `typ`
    (3-D: panels x R.S.Cg x nr, or 2-D: one panel) at its run-time offset."""
    index = ir.IndexType.get()
    metadata = memref.ExtractStridedMetadataOp(b)
    offset = arith.addi(metadata.offset, arith.muli(first, arith.constant(index, spec.shape.taps * spec.tile.nr)))
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    return memref.reinterpret_cast(typ, metadata.base_buffer, [offset], [], [], [dyn], typ.shape,
                                   ir.StridedLayoutAttr(typ.layout).strides)


def _transposed_loader(memory, lanes: int, row_length: int):
    """`load(memory, row, col, mask)` of the transposed matrix: elements (col + i, row) of a row-major
    matrix `row_length` wide, gathered (masked: zeros beyond)."""
    vec, strides, zero, every = _gather_parts(memory, lanes, row_length)

    def load(source, row, col, mask) -> ir.Value:
        return vector.gather(vec, source, [col, row], strides, every if mask is None else mask, zero)
    return load


def depthwise_filter_hwc(spec: "ConvSpec", e: Emitter, b) -> ir.Value:
    """An FHWC depthwise filter (C rows of R.S taps) copied to HWC (R.S rows of C channels), which the
    kernel reads a vector of channels at a time: R.S.C values, 1 / (2.N.P.Q) of the layer's work."""
    sh = spec.shape
    elt = ir.MemRefType(b.type).element_type
    hwc = memref.alloc(ir.MemRefType.get([sh.taps, sh.k], elt), [], [],
                       alignment=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 64))
    channels = e.loop(0, sh.k)
    with ir.InsertionPoint(channels.body):
        channel = channels.induction_variable
        taps = e.loop(0, sh.taps)
        with ir.InsertionPoint(taps.body):
            tap = taps.induction_variable
            memref.store(memref.load(b, [channel, tap]), hwc, [tap, channel])
            scf.YieldOp([])
        scf.YieldOp([])
    return hwc


def emit_depthwise_nchw(spec: "ConvSpec", e: Emitter, lanes: int, a, b, c, lo, hi) -> None:
    """NCHW: rows [lo, hi) of the N.K.P output rows, each a plane's row, vectorized along its width:
    mr vectors of output pixels accumulated over every tap (r in the row's bounds, each s), the
    filter's tap broadcast. An input vector is a contiguous load at stride 1 and a gather otherwise,
    its lanes outside the input masked off (they read nothing and count as zeros)."""
    sh, vectors = spec.shape, spec.kernel.mr
    elt = ir.MemRefType(a.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    mask_type = ir.VectorType.get([lanes], ir.IntegerType.get_signless(1))
    zero = arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt)))
    width = lanes * vectors
    tiles, rest = divmod(sh.q, width)

    rows = e.loop(lo, hi)
    with ir.InsertionPoint(rows.body):
        row = rows.induction_variable
        plane, p = arith.divui(row, e.c(sh.p)), arith.remui(row, e.c(sh.p))  # output plane = image.K + filter
        channel = arith.remui(plane, e.c(sh.k))
        # The input plane it reads: image.C + filter / multiplier.
        in_plane = arith.addi(e.mul(arith.divui(plane, e.c(sh.k)), sh.c), arith.divui(channel, e.c(sh.kg)))
        h0 = arith.subi(e.mul(p, sh.stride), e.c(sh.pad))
        r_lo = arith.maxsi(e.c(0), arith.ceildivsi(arith.subi(e.c(0), h0), e.c(sh.dilation)))
        r_hi = arith.minsi(e.c(sh.r), arith.addi(arith.floordivsi(arith.subi(e.c(sh.h - 1), h0),
                                                                  e.c(sh.dilation)), e.c(1)))
        row_vector = _row_vectors(sh, e, lanes, a)

        def block(q0: ir.Value, count: int, tail: int) -> None:
            """`count` vectors of output pixels from q0, the last holding `tail` pixels when tail > 0."""
            r_loop = scf.ForOp(r_lo, r_hi, e.c(1), [zero] * count)
            with ir.InsertionPoint(r_loop.body):
                r = r_loop.induction_variable
                h = arith.addi(h0, e.mul(r, sh.dilation))
                accs = list(r_loop.inner_iter_args)
                for s in range(sh.s):
                    weight = vector.broadcast(vec, memref.load(b, [channel, e.add(e.mul(r, sh.s), e.c(s))]))
                    for v in range(count):
                        x = row_vector(in_plane, h, arith.addi(q0, e.c(v * lanes)), s, tail if v == count - 1 else 0)
                        accs[v] = vector.fma(x, weight, accs[v])
                scf.YieldOp(accs)
            for v, value in enumerate(r_loop.results):
                column = arith.addi(q0, e.c(v * lanes))
                if tail and v == count - 1:
                    vector.maskedstore(c, [plane, arith.addi(e.mul(p, sh.q), column)],
                                       vector.create_mask(mask_type, [e.c(tail)]), value)
                else:
                    vector.store(value, c, [plane, arith.addi(e.mul(p, sh.q), column)])

        if tiles:
            q_loop = e.loop(0, tiles * width, width)
            with ir.InsertionPoint(q_loop.body):
                block(q_loop.induction_variable, vectors, 0)
                scf.YieldOp([])
        if rest:
            whole, tail = divmod(rest, lanes)
            block(e.c(tiles * width), whole + bool(tail), tail)
        scf.YieldOp([])


def emit_direct(spec: "ConvSpec", e: Emitter, lanes: int, a, b, c, lo, hi) -> None:
    """The `direct` route (NHWC): no column matrix and no packing. Per group, the same tiles as the
    depthwise kernel (mr pixels x nr output channels), each tap a loop over the group's input
    channels: the tap's filter row of nr channels loaded as vectors (HWCF keeps them contiguous),
    each pixel's input value broadcast, mr x nr/lanes FMAs: the micro-kernel's inner step, with A
    read straight from the input. Each block of output channels first copies its slice of the filter
    into a contiguous buffer (R.S.Cg rows of nr values): read in place, a filter row is K values
    apart from the next, and a deep layer's taps then span megabytes of pages (the TLB, not the
    FMAs, set the pace)."""
    sh = spec.shape
    load = _loader(b, lanes)
    elt = ir.MemRefType(a.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    vectors = max(1, -(-spec.kernel.nr // lanes))
    slice_type = ir.MemRefType.get([sh.taps, vectors * lanes], elt)
    if spec.prepacked:
        if vectors * lanes != spec.kernel.nr:
            raise SpecError(f"weights = \"packed\": the direct kernel reads nr = {spec.kernel.nr} filters a "
                            f"panel in whole vectors of {lanes}")
        packed = None
        slice_type = ir.MemRefType.get([sh.taps, spec.kernel.nr], elt, layout=ir.StridedLayoutAttr.get(
            offset=ir.ShapedType.get_dynamic_stride_or_offset(), strides=[spec.kernel.nr, 1]))
    else:
        packed = memref.alloc(slice_type, [], [], alignment=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 64))
    if sh.fhwc:  # a filter row's nr channels are K rows of R.S.Cg apart: gathered while packing
        load = _transposed_loader(b, lanes, sh.taps)
    #: The slice of the filter the current block of output channels reads: the copy, or its prepacked panel.
    current = {"slice": packed}

    def pack(channels) -> None:
        if spec.prepacked:  # channel blocks are nr wide, and so are panels: this block's panel
            within = arith.divui(arith.subi(channels[0][0], first_channel), e.c(spec.kernel.nr))
            current["slice"] = filter_panels(spec, b, arith.addi(e.mul(group, spec.filter_panels), within),
                                             slice_type)
            return
        rows = e.loop(0, sh.taps)
        with ir.InsertionPoint(rows.body):
            kk = rows.induction_variable
            for j, (col, mask) in enumerate(channels):
                vector.store(load(b, kk, col, mask), packed, [kk, e.c(j * lanes)])
            scf.YieldOp([])

    groups = e.loop(0, sh.groups)
    with ir.InsertionPoint(groups.body):
        g = group = groups.induction_variable
        channel0 = e.mul(g, sh.cg)
        first_channel = e.mul(g, sh.kg)

        def tap(accs, r, s, pixels, channels):
            depth0 = e.mul(arith.addi(e.mul(r, sh.s), e.c(s)), sh.cg)
            ci_loop = scf.ForOp(e.c(0), e.c(sh.cg), e.c(1), accs)
            with ir.InsertionPoint(ci_loop.body):
                ci = ci_loop.induction_variable
                weights = [vector.load(vec, current["slice"], [arith.addi(depth0, ci), e.c(j * lanes)])
                           for j in range(len(channels))]
                out = list(ci_loop.inner_iter_args)
                for i, in_row in pixels:
                    x = vector.broadcast(vec, memref.load(a, [in_row, arith.addi(channel0, ci)]))
                    for j in range(len(channels)):
                        k = i * len(channels) + j
                        out[k] = vector.fma(x, weights[j], out[k])
                scf.YieldOp(out)
            return list(ci_loop.results)

        emit_nhwc_tiles(spec, e, lanes, c, lo, hi, sh.kg, first_channel, tap, channels_outside=True,
                        before_channels=pack)
        scf.YieldOp([])
    if packed is not None:
        memref.dealloc(packed)


def _row_vectors(sh: "ConvShape", e: Emitter, lanes: int, a):
    """`vector(plane, h, q0, s, tail)`: the input values tap s of output pixels q0 .. q0 + lanes reads in
    row h of a (N.C) x (H.W) plane, zeros where they fall outside the row (or past `tail` pixels when
    tail > 0): a masked contiguous load at stride 1, a masked gather otherwise."""
    elt = ir.MemRefType(a.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    ivec = ir.VectorType.get([lanes], ir.IndexType.get())
    mask_type = ir.VectorType.get([lanes], ir.IntegerType.get_signless(1))
    zero = arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt)))
    strided = arith.muli(vector.step(ivec), vector.broadcast(ivec, e.c(sh.stride)))

    def load(plane, h, q0, s: int, tail: int) -> ir.Value:
        first = arith.addi(e.mul(q0, sh.stride), e.c(s * sh.dilation - sh.pad))
        columns = arith.addi(strided, vector.broadcast(ivec, first))
        inside = arith.andi(arith.cmpi(arith.CmpIPredicate.sge, columns, vector.broadcast(ivec, e.c(0))),
                            arith.cmpi(arith.CmpIPredicate.slt, columns, vector.broadcast(ivec, e.c(sh.w))))
        if tail:
            inside = arith.andi(inside, vector.create_mask(mask_type, [e.c(tail)]))
        if sh.stride == 1:
            return vector.maskedload(vec, a, [plane, arith.addi(e.mul(h, sh.w), first)], inside, zero)
        return vector.gather(vec, a, [plane, e.c(0)], arith.addi(columns, vector.broadcast(ivec, e.mul(h, sh.w))),
                             inside, zero)
    return load


def emit_direct_nchw(spec: "ConvSpec", e: Emitter, lanes: int, a, b, c, lo, hi) -> None:
    """The `direct` route (NCHW): rows [lo, hi) of N x (blocks of up to mr filters of one group) x P; each
    output row of a block in tiles of nr/lanes vectors along its width, accumulated over the group's
    input channels and every tap: the filters' tap values broadcast against the input row's vector."""
    sh, mr = spec.shape, spec.kernel.mr
    vectors = max(1, -(-spec.kernel.nr // lanes))
    elt = ir.MemRefType(a.type).element_type
    vec = ir.VectorType.get([lanes], elt)
    mask_type = ir.VectorType.get([lanes], ir.IntegerType.get_signless(1))
    zero = arith.constant(vec, ir.DenseElementsAttr.get_splat(vec, _zero_attr(elt)))
    blocks = -(-sh.kg // mr)
    width = lanes * vectors
    tiles, rest = divmod(sh.q, width)
    row_vector = _row_vectors(sh, e, lanes, a)
    rows = e.loop(lo, hi)
    with ir.InsertionPoint(rows.body):
        row = rows.induction_variable
        p = arith.remui(row, e.c(sh.p))
        block_index = arith.divui(row, e.c(sh.p))  # image . (groups . blocks) + group . blocks + block
        image = arith.divui(block_index, e.c(sh.groups * blocks))
        g = arith.divui(arith.remui(block_index, e.c(sh.groups * blocks)), e.c(blocks))
        j = arith.remui(block_index, e.c(blocks))
        k0 = arith.addi(e.mul(g, sh.kg), e.mul(j, mr))
        h0 = arith.subi(e.mul(p, sh.stride), e.c(sh.pad))
        r_lo = arith.maxsi(e.c(0), arith.ceildivsi(arith.subi(e.c(0), h0), e.c(sh.dilation)))
        r_hi = arith.minsi(e.c(sh.r), arith.addi(arith.floordivsi(arith.subi(e.c(sh.h - 1), h0),
                                                                  e.c(sh.dilation)), e.c(1)))
        plane0 = arith.addi(e.mul(image, sh.c), e.mul(g, sh.cg))

        def tile(filters: int, q0: ir.Value, count: int, tail: int) -> None:
            r_loop = scf.ForOp(r_lo, r_hi, e.c(1), [zero] * (filters * count))
            with ir.InsertionPoint(r_loop.body):
                r = r_loop.induction_variable
                h = arith.addi(h0, e.mul(r, sh.dilation))
                ci_loop = scf.ForOp(e.c(0), e.c(sh.cg), e.c(1), list(r_loop.inner_iter_args))
                with ir.InsertionPoint(ci_loop.body):
                    ci = ci_loop.induction_variable
                    accs = list(ci_loop.inner_iter_args)
                    for s in range(sh.s):
                        xs = [row_vector(arith.addi(plane0, ci), h, arith.addi(q0, e.c(v * lanes)), s,
                                         tail if v == count - 1 else 0) for v in range(count)]
                        tap = e.add(e.mul(ci, sh.r * sh.s), e.mul(r, sh.s), e.c(s))
                        for i in range(filters):
                            weight = vector.broadcast(vec, memref.load(b, [arith.addi(k0, e.c(i)), tap]))
                            for v in range(count):
                                accs[i * count + v] = vector.fma(xs[v], weight, accs[i * count + v])
                    scf.YieldOp(accs)
                scf.YieldOp(list(ci_loop.results))
            results = iter(r_loop.results)
            for i in range(filters):
                out_row = arith.addi(e.mul(image, sh.k), arith.addi(k0, e.c(i)))
                for v in range(count):
                    column = arith.addi(e.mul(p, sh.q), arith.addi(q0, e.c(v * lanes)))
                    if tail and v == count - 1:
                        vector.maskedstore(c, [out_row, column], vector.create_mask(mask_type, [e.c(tail)]),
                                           next(results))
                    else:
                        vector.store(next(results), c, [out_row, column])

        def row_of(filters: int) -> None:
            if tiles:
                q_loop = e.loop(0, tiles * width, width)
                with ir.InsertionPoint(q_loop.body):
                    tile(filters, q_loop.induction_variable, vectors, 0)
                    scf.YieldOp([])
            if rest:
                whole, tail = divmod(rest, lanes)
                tile(filters, e.c(tiles * width), whole + bool(tail), tail)

        last = sh.kg - (blocks - 1) * mr
        if last == mr:
            row_of(mr)
        else:  # the group's last block holds fewer filters
            branch = scf.IfOp(arith.cmpi(arith.CmpIPredicate.eq, j, e.c(blocks - 1)), has_else=True)
            with ir.InsertionPoint(branch.then_block):
                row_of(last)
                scf.YieldOp([])
            with ir.InsertionPoint(branch.else_block):
                row_of(mr)
                scf.YieldOp([])
        scf.YieldOp([])
