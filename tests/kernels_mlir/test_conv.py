"""Convolution: the spec's checks, the float64 reference against the definition, and every route
against the reference on odd cases in both layouts, with the guards watching the output's edges."""
import itertools

import numpy as np
import pytest

from kernels_mlir import conv
from kernels_mlir.conv import ConvShape, ConvSpec, conv_reference
from kernels_mlir.spec import KernelSpec, SpecError
from runner.measure.lifecycle import Candidate, build
from runner.measure.verify import verify

from ..conftest import best_host_strategy

#: Odd cases: a 1x1 input padded around a 3x3 kernel, prime sizes, strides 2 and 3, padding 3,
#: dilation 2, groups 1, 2 and C (depthwise with a channel multiplier of 2), a kernel larger than the input,
#: and a long unpadded row.
ODD = [
    ConvShape(1, 1, 1, 3, 5, 3, 3, pad=1),
    ConvShape(2, 7, 11, 5, 13, 3, 3, stride=2, pad=1),
    ConvShape(1, 11, 13, 3, 7, 3, 3, stride=3, pad=3, dilation=2),
    ConvShape(1, 6, 7, 4, 6, 3, 3, pad=1, groups=2),
    ConvShape(1, 5, 6, 4, 8, 3, 3, pad=1, groups=4),
    ConvShape(1, 3, 2, 2, 3, 5, 5, pad=2),
    ConvShape(2, 5, 3, 7, 11, 1, 1),
    ConvShape(1, 4, 41, 6, 16, 3, 3),  # a row long enough for a loop of tiles, unpadded: no border tile
]


def _definition(sh: ConvShape, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """out[n, p, q, k] by the textbook loops, on (N, H, W, C) and (R, S, Cg, K) arrays."""
    out = np.zeros((sh.n, sh.p, sh.q, sh.k))
    for n, p, q, k, r, s, ci in itertools.product(range(sh.n), range(sh.p), range(sh.q), range(sh.k), range(sh.r),
                                                  range(sh.s), range(sh.cg)):
        h, col = p * sh.stride - sh.pad + r * sh.dilation, q * sh.stride - sh.pad + s * sh.dilation
        if 0 <= h < sh.h and 0 <= col < sh.w:
            out[n, p, q, k] += x[n, h, col, (k // sh.kg) * sh.cg + ci] * w[r, s, ci, k]
    return out


#: The layouts a case runs in: NHWC with either filter layout, NCHW.
LAYOUTS = {"nhwc": {"layout": "nhwc"}, "nchw": {"layout": "nchw"}, "fhwc": {"layout": "nhwc", "filters": "fhwc"}}


@pytest.mark.parametrize("sh", ODD[:6], ids=str)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_reference_is_the_definition(sh, layout):
    sh = ConvShape(**{**sh.workload(), **LAYOUTS[layout]})
    spec = ConvSpec(sh, "im2col", KernelSpec(4, 8, 64))
    ops = spec.operands(seed=3)
    x, w = conv.to_nhwc(sh, ops.a, ops.b)
    want = _definition(sh, x.astype(np.float64), w.astype(np.float64))
    got = conv_reference(sh, ops.a, ops.b, exact=False)
    as_nhwc = got.reshape(sh.n, sh.p, sh.q, sh.k) if sh.layout == "nhwc" else \
        got.reshape(sh.n, sh.k, sh.p, sh.q).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(as_nhwc, want, rtol=1e-12, atol=1e-12)


def _routes(sh: ConvShape) -> list[str]:
    return [r for r in conv.ROUTES if not conv.cannot_take(sh, r)]


#: Depthwise layers (the depthwise route's): channels (NHWC) or output widths
#: (NCHW) beyond whole vectors, a border on both sides, stride 2, dilation 2, rows partly in the padding,
#: an output row wider than one register tile (NCHW), channel multipliers.
DEPTHWISE = [ConvShape(1, 7, 9, 19, 19, 3, 3, pad=1, groups=19), ConvShape(2, 9, 11, 40, 40, 3, 3, stride=2, pad=1,
                                                                           groups=40),
             ConvShape(1, 13, 17, 8, 8, 5, 5, pad=4, dilation=2, groups=8), ConvShape(1, 2, 3, 3, 3, 3, 3, pad=1, groups=3),
             ConvShape(1, 5, 131, 3, 3, 3, 3, pad=1, groups=3), ConvShape(1, 6, 97, 2, 2, 3, 3, stride=2, pad=1, groups=2),
             # Channel multipliers: 4 (a shuffle repeats each input channel), 3 (not dividing the lanes: a gather)
             ConvShape(1, 6, 23, 8, 32, 3, 3, pad=1, groups=8), ConvShape(1, 5, 30, 5, 15, 3, 3, stride=2, pad=1, groups=5)]
def _nhwc_variant(i: int) -> tuple[str, str]:
    """Case i's NHWC filter layout and weights, in turn: HWCF, FHWC, HWCF packed once, FHWC packed once."""
    return ("nhwc", "fhwc")[i % 2], ("rows", "packed")[i // 2 % 2]


#: Every shape in both layouts, by every route it can take; the NHWC cases take the filter layouts and
#: weights in turn (_nhwc_variant), so each of the four meets strides, dilation, groups and multipliers.
CASES = [(sh, layout, weights, route, 1 + (i + j) % 2) for i, sh in enumerate(ODD + DEPTHWISE)
         for j, (layout, weights) in enumerate([_nhwc_variant(i), ("nchw", "rows")])
         for route in _routes(ConvShape(**{**sh.workload(), **LAYOUTS[layout]}))]


@pytest.mark.parametrize("sh, layout, weights, route, threads", CASES,
                         ids=[f"{s.h}x{s.w}x{s.c}-{s.k}x{s.r}x{s.s}-s{s.stride}p{s.pad}d{s.dilation}g{s.groups}-{lay}-"
                              f"{w}-{r}-t{t}" for s, lay, w, r, t in CASES])
def test_every_route_agrees_with_the_reference(host, sh, layout, weights, route, threads):
    sh = ConvShape(**{**sh.workload(), **LAYOUTS[layout]})
    strategy = best_host_strategy(64)
    # A chunk of 5 lines: never a whole number of register tiles, so the remainder GEMM runs too.
    spec = ConvSpec(sh, route, strategy.kernel, mc=12, nc=32, threads=threads, weights=weights,
                    pack_bytes=5 * sh.taps * 4 if route == "im2col_chunked" else None)
    ops = spec.operands(seed=7)
    assert ops.b.shape == spec.matrices()["B"] and spec.logical_filter(ops.b).shape == sh.matrices()["B"]
    check = verify(build(Candidate(strategy, spec, host)).code, spec, seed=sh.h + sh.k)
    assert check.correct, check.message


def test_a_route_writing_outside_its_output_is_caught_by_the_guards(host, monkeypatch):
    """The last chunk computed as a whole one: its pixel columns run past the image's last, and for the
    last filter of the last image past the end of C (NCHW packs those pixels as padding, so nothing is
    read out of bounds)."""
    real = conv._chunk
    monkeypatch.setattr(conv, "_chunk", lambda spec, e, gemm, lines, *rest: real(
        spec, e, f"ukl_conv_gemm_{spec.chunk}", spec.chunk, *rest))
    strategy = best_host_strategy(64)
    sh = ConvShape(1, 6, 6, 4, 8, 3, 3, pad=1, layout="nchw")
    spec = ConvSpec(sh, "im2col_chunked", strategy.kernel, mc=12, nc=32, pack_bytes=5 * sh.taps * 4)
    assert (spec.chunk, spec.lines % spec.chunk) == (5, 1)
    check = verify(build(Candidate(strategy, spec, host)).code, spec)
    assert not check.correct and "wrote outside the C block: after its last row" in check.message


@pytest.mark.parametrize("shape, how, message", [
    ({"h": 0}, {}, "h: must be an integer between 1"),
    ({"groups": 3}, {}, "groups: 3 must divide the input channels (4) and the filters (8)"),
    ({"r": 9}, {}, "the kernel (9 wide with dilation) is larger than the padded input along h (6 + 2 x 1)"),
    ({"dilation": 4}, {}, "the kernel (9 wide with dilation) is larger than the padded input"),
    ({"pad": -1}, {}, "pad: must be an integer between 0"),
    ({}, {"route": "im2col_chunked", "pack_bytes": 100}, "pack_bytes: must hold one line of the column matrix (144 bytes"),
    ({}, {"route": "pointwise"}, "route pointwise: needs a 1x1 kernel, stride 1 and no padding"),
    ({}, {"route": "winograd"}, "route: must be one of"),
    ({}, {"pack_bytes": 4096}, "pack_bytes: only route im2col_chunked takes it"),
    ({"groups": 2}, {"route": "depthwise"}, "route depthwise: needs an f32 or f64 convolution with groups = C"),
    ({"layout": "chwn"}, {}, "layout: must be one of"),
])
def test_bad_convolutions_name_the_problem(shape, how, message):
    with pytest.raises(SpecError, match=__import__("re").escape(message)):
        ConvSpec(ConvShape(**{**ConvShape(1, 6, 6, 4, 8, 3, 3, pad=1).workload(), **shape}),
                 kernel=KernelSpec(4, 8, 64), **how)


def test_chunks_hold_what_pack_bytes_allows_in_whole_tiles():
    sh = ConvShape(1, 56, 56, 64, 64, 3, 3, pad=1)
    line = 576 * 4
    spec = ConvSpec(sh, "im2col_chunked", KernelSpec(6, 16, 256), pack_bytes=100 * line)
    assert spec.chunk == 96 and spec.chunks == -(-56 * 56 // 96)
    assert spec.extra_bytes >= 96 * line
    whole = ConvSpec(sh, "im2col", KernelSpec(6, 16, 256), threads=2)
    assert whole.chunk == 1572 and whole.partition() == [(0, 1), (1, 2)]  # half, in whole 6-row tiles
    assert ConvSpec.from_dict(spec.to_dict()) == spec


def test_an_fhwc_filter_is_the_transpose_of_the_hwcf_matrix():
    hwcf = ConvShape(1, 6, 7, 4, 6, 3, 3, pad=1, groups=2)
    fhwc = ConvShape(**{**hwcf.workload(), "filters": "fhwc"})
    assert fhwc.matrices()["B"] == hwcf.matrices()["B"][::-1] == (6, 18)
    ops = ConvSpec(hwcf, "im2col", KernelSpec(4, 8, 64)).operands(seed=5)
    assert np.array_equal(conv_reference(fhwc, ops.a, np.ascontiguousarray(ops.b.T), exact=False),
                          conv_reference(hwcf, ops.a, ops.b, exact=False))
    assert "filters" not in hwcf.workload() and fhwc.workload()["filters"] == "fhwc"  # old hashes stay


@pytest.mark.parametrize("fields, message", [({"filters": "fhwc", "layout": "nchw"}, "filters: nchw takes fchw"),
                                             ({"filters": "hwfc"}, "filters: nhwc takes hwcf or fhwc")])
def test_a_filter_layout_the_layout_does_not_take_names_both(fields, message):
    with pytest.raises(SpecError, match=message):
        ConvShape(1, 6, 7, 4, 6, 3, 3, **fields)


def test_packed_weights_round_trip_and_are_refused_where_there_are_no_panels():
    spec = ConvSpec(ConvShape(1, 6, 7, 4, 6, 3, 3, pad=1, groups=2, filters="fhwc"), "direct", KernelSpec(4, 8, 64),
                    weights="packed")
    b = np.arange(6 * 18, dtype=np.float32).reshape(6, 18)
    packed = spec.pack_weights(b)
    assert packed.shape == (2 * 1 * 18, 8) and np.array_equal(spec.logical_filter(packed), b)
    assert packed[:18, 3:].max() == 0  # a group's 3 filters in a panel of 8, zero-padded
    assert ConvSpec.from_dict(spec.to_dict()) == spec and "weights" not in ConvSpec(spec.shape).to_dict()
    with pytest.raises(SpecError, match="weights: \"packed\" panels are NHWC's"):
        ConvSpec(ConvShape(1, 6, 7, 4, 6, 3, 3, layout="nchw"), "im2col", KernelSpec(4, 8, 64), weights="packed")
