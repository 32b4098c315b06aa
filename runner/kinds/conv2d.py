"""Kind `conv2d`: a 2-D convolution computed by a route (im2col, im2col_chunked, pointwise) around the
strategy's micro-kernel, timed against ONNX Runtime's Conv in the same alternation.

The spec, its reference and its routes are kernels_mlir.conv; the baseline is
runner.measure.onnxruntime_conv. The [conv2d] section:

    [conv2d]
    layout = "nhwc"                      # or "nchw"
    filters = "hwcf"                     # NHWC's filter layout: "hwcf" (R, S, C, K) or "fhwc" (K, R, S, C)
    weights = "rows"                     # or "packed": NHWC filters packed once, as a library loads a model
    routes = ["im2col", "im2col_chunked", "pointwise"]   # each layer runs the routes it can take
    pack_bytes = 262144                  # im2col_chunked's bound on one packed chunk
    threads = 1
    layers = [{ name = "conv2_1", h = 56, w = 56, c = 64, k = 64, r = 3, s = 3, pad = 1 }, ...]

A layer gives n (default 1), h, w, c, k, r, s, stride, pad, dilation, groups, and optionally the
network it comes from (`ukl routes` fits its route rule leaving one network out at a time); its
dtype is the strategy's. A sweep point may set route, mc, nc, pack_bytes and threads.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from kernels_mlir.conv import (CONV, DIRECT_ROUTES, FILTERS, LAYOUTS, ROUTES, WEIGHTS, ConvShape, ConvSpec, build_conv,
                               cannot_take, to_nhwc)
from kernels_mlir.gemm import DEFAULT_MC, DEFAULT_NC, MAX_DIM, MAX_THREADS
from kernels_mlir.names import kernel_symbol
from kernels_mlir.operands import Operands
from kernels_mlir.spec import SpecError
from pipelines.compile_gemm import compile_driver
from pipelines.targets import Target, get_target
from transforms.errors import StrategyError
from transforms.knobs import Knob, Point
from transforms.strategy import Strategy

from runner.cli.output import baseline_table
from runner.config.fields import MAX_SHAPES, check_threads, fits_in_memory, known, plain_name, typed
from runner.kinds.base import Compiled, SharedEntryKind, problem_knobs, ratio_cell, register, scalable_length
from runner.measure.baselines import Baseline
from runner.measure.onnxruntime_conv import ort_conv
from runner.measure.record import Record

#: A chunk of the column matrix that fits every core's L2 with room for the GEMM's packed blocks.
DEFAULT_PACK_BYTES = 256 * 1024
KNOBS: tuple[Knob, ...] = (
    Knob("route", ROUTES[0], ROUTES),
    Knob("mc", DEFAULT_MC, maximum=MAX_DIM),
    Knob("nc", DEFAULT_NC, maximum=MAX_DIM),
    Knob("pack_bytes", DEFAULT_PACK_BYTES, minimum=1, maximum=1 << 40),
    Knob("threads", 1, maximum=MAX_THREADS),
)
LAYER_KEYS = {"name", "network", "n", "h", "w", "c", "k", "r", "s", "stride", "pad", "dilation", "groups"}
SECTION_KEYS = {"layout", "filters", "weights", "routes", "layers", *(k.name for k in KNOBS if k.name != "route")}


@dataclass(frozen=True)
class ConvSettings:
    """The [conv2d] section: named layers, the layout, the routes each layer runs, the other knobs."""

    #: (name, network or "", sizes) per layer.
    layers: tuple[tuple[str, str, tuple[tuple[str, int], ...]], ...]
    layout: str
    routes: tuple[str, ...]
    how: tuple[tuple[str, Any], ...]
    #: The config's target: the vector length GEMM routes around a scalable kernel are built for.
    target: str = "host"
    #: The filter layout (ConvShape.filters): None for the layout's default.
    filters: str | None = None
    #: How the routes take the filter (ConvSpec.weights).
    weights: str = "rows"

    def specs(self, strategy: Strategy, point: Point | None = None) -> list[tuple[str, ConvSpec]]:
        """(layer name, spec) for every (layer, route) this strategy runs: a sweep point's route alone,
        else the section's routes that the layer can take (kernels_mlir.conv.cannot_take)."""
        how = {**dict(self.how), **(problem_knobs(point, CONV2D) if point is not None else {})}
        routes = (how.pop("route"),) if "route" in how else self.routes
        specs = []
        scalable = strategy.kernel.scalable is not None
        bits = scalable_length(strategy, get_target(self.target)) if scalable else None
        for name, _, sizes in self.layers:
            shape = ConvShape(**dict(sizes), layout=self.layout, dtype=strategy.kernel.dtype, filters=self.filters)
            for route in routes:
                if cannot_take(shape, route) or (scalable and route in DIRECT_ROUTES):
                    continue
                specs.append((name, ConvSpec(shape, route, strategy.kernel, mc=how["mc"], nc=how["nc"],
                                             pack_bytes=how["pack_bytes"] if route == "im2col_chunked" else None,
                                             threads=how["threads"], vector_bits=bits, weights=self.weights)))
        return specs

    def by_layer(self, strategies: tuple[Strategy, ...], network: str) -> list[tuple[str, str, list[tuple[Strategy, ConvSpec]]]]:
        """(layer, its network or `network`, every (strategy, spec) it runs), layer by layer."""
        found: dict[str, list[tuple[Strategy, ConvSpec]]] = {}
        for strategy in strategies:
            for name, spec in self.specs(strategy):
                found.setdefault(name, []).append((strategy, spec))
        return [(name, net or network, found[name]) for name, net, _ in self.layers if name in found]


def _layer(raw: Any, index: int) -> tuple[str, str, tuple[tuple[str, int], ...]]:
    where = f"conv2d.layers[{index}]"
    if not isinstance(raw, dict):
        raise StrategyError(f"{where}: must be a table of sizes, got {raw!r}")
    known(raw, LAYER_KEYS, f"{where}.")
    name = plain_name(typed(raw, "name", str, f"{where}.", f"layer{index}"), f"{where}.name")
    network = typed(raw, "network", str, f"{where}.", "")
    if network:
        plain_name(network, f"{where}.network")
    sizes = {key: typed(raw, key, int, f"{where}.", None) for key in sorted(LAYER_KEYS - {"name", "network"})
             if key in raw}
    missing = [key for key in ("h", "w", "c", "k", "r", "s") if key not in sizes]
    if missing:
        raise StrategyError(f"{where}: needs {', '.join(missing)}")
    sizes.setdefault("n", 1)
    try:
        ConvShape(**sizes)
    except SpecError as exc:
        raise StrategyError(f"{where} ({name}).{exc}") from None
    return name, network, tuple(sorted(sizes.items()))


def _any(settings: ConvSettings) -> ConvShape:
    """The first layer (what a refusal names)."""
    return ConvShape(**dict(settings.layers[0][2]), layout=settings.layout, filters=settings.filters)


class Conv2dKind(SharedEntryKind):
    name = "conv2d"
    section = "conv2d"
    knobs = KNOBS
    plots = ("baselines", "knob_effects", "optuna")

    def read_section(self, table: dict[str, Any], strategies: tuple[Strategy, ...]) -> ConvSettings:
        known(table, SECTION_KEYS, "conv2d.")
        raw_layers = table.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise StrategyError(f"conv2d.layers: must be a non-empty list of layer tables, got {raw_layers!r}")
        if len(raw_layers) > MAX_SHAPES:
            raise StrategyError(f"conv2d.layers: {len(raw_layers)} layers; at most {MAX_SHAPES}")
        layers = tuple(_layer(raw, i) for i, raw in enumerate(raw_layers))
        names = [name for name, _, _ in layers]
        if len(set(names)) != len(names):
            raise StrategyError(f"conv2d.layers: names must be unique, got {sorted({n for n in names if names.count(n) > 1})}")
        layout = typed(table, "layout", str, "conv2d.", LAYOUTS[0])
        if layout not in LAYOUTS:
            raise StrategyError(f"conv2d.layout: must be one of {list(LAYOUTS)}, got {layout!r}")
        filters = typed(table, "filters", str, "conv2d.", None)
        if filters is not None and filters not in FILTERS[layout]:
            raise StrategyError(f"conv2d.filters: a {layout} layout takes {' or '.join(FILTERS[layout])} filters, "
                                f"got {filters!r}")
        filters = None if filters == FILTERS[layout][0] else filters  # the default: hashes as before
        weights = typed(table, "weights", str, "conv2d.", WEIGHTS[0])
        if weights not in WEIGHTS:
            raise StrategyError(f"conv2d.weights: must be one of {list(WEIGHTS)}, got {weights!r}")
        if weights == "packed" and layout != "nhwc":
            raise StrategyError("conv2d.weights: \"packed\" filters are NHWC's (panels of the GEMM view's B)")
        routes = table.get("routes", list(ROUTES))
        if not isinstance(routes, list) or not routes or any(r not in ROUTES for r in routes) or \
                len(set(routes)) != len(routes):
            raise StrategyError(f"conv2d.routes: must be a list of distinct routes from {list(ROUTES)}, got {routes!r}")
        how = {}
        for knob in KNOBS:
            if knob.name != "route":  # (the section lists its routes)
                how[knob.name] = typed(table, knob.name, int, "conv2d.", knob.default)
                knob.check(how[knob.name], "conv2d.")
        check_threads(how["threads"], "conv2d.threads")
        settings = ConvSettings(layers, layout, tuple(routes), tuple(how.items()), filters=filters, weights=weights)
        for strategy in strategies:
            if strategy.kernel.scalable:  # its tile depends on the target's length: counted in problems()
                continue
            for layer, spec in self._specs_or_fail(settings, strategy):
                fits_in_memory(spec.bytes_needed, f"conv2d ({strategy.name}, {layer}, {spec.route})")
        return settings

    def bind_target(self, settings: ConvSettings, target: str) -> ConvSettings:
        return dataclasses.replace(settings, target=target)

    def _specs_or_fail(self, settings: ConvSettings, strategy: Strategy,
                       point: Point | None = None) -> list[tuple[str, ConvSpec]]:
        try:
            specs = settings.specs(strategy, point)
        except SpecError as exc:
            raise StrategyError(f"conv2d ({strategy.name}): {exc}") from None
        if not specs:
            routes = [point["route"]] if point is not None and "route" in point else list(settings.routes)
            raise StrategyError(f"conv2d: no layer can take route(s) {routes} "
                                f"({'; '.join(f'{r}: {cannot_take(_any(settings), r)}' for r in routes)})")
        return specs

    def vector_lengths(self, problem: ConvSpec, target: Target) -> tuple[int | None, ...]:
        """Built around a scalable kernel for one length, it runs at that one."""
        return (problem.vector_bits,)

    def problems(self, settings: ConvSettings, strategy: Strategy, point: Point | None = None) -> list[ConvSpec]:
        specs = self._specs_or_fail(settings, strategy, point)
        if strategy.kernel.scalable:  # its buffers are sized by the target's length: counted once it is known
            for layer, spec in specs:
                fits_in_memory(spec.bytes_needed, f"conv2d ({strategy.name}, {layer}, {spec.route})")
        return [spec for _, spec in specs]

    def problems_per_strategy(self, settings: ConvSettings) -> int:
        return sum(len([r for r in settings.routes if not cannot_take(ConvShape(**dict(sizes), layout=settings.layout), r)])
                   for _, _, sizes in settings.layers)

    def to_dict(self, problem: ConvSpec) -> dict[str, Any]:
        return problem.to_dict()

    def from_dict(self, data: dict[str, Any]) -> ConvSpec:
        return ConvSpec.from_dict(data)

    def label(self, strategy: Strategy, p: ConvSpec) -> str:
        """The strategy's name, the layer's sizes, and the route (with its bound and threads)."""
        sh = p.shape
        layer = f"{sh.n}x{sh.h}x{sh.w}x{sh.c}-{sh.k}x{sh.r}x{sh.s}-s{sh.stride}p{sh.pad}" + \
            (f"d{sh.dilation}" if sh.dilation > 1 else "") + (f"g{sh.groups}" if sh.groups > 1 else "")
        how = p.route + (f"-pb{p.pack_bytes}" if p.pack_bytes is not None else "") + \
            ("-packedW" if p.prepacked else "") + \
            (f"-t{p.threads}" if p.threads > 1 else "")
        return f"{strategy.name}@{layer}-{sh.layout}{'-' + sh.filters if sh.filters else ''}/{how}"

    def strategy_name(self, label: str) -> str:
        return label.split("@")[0]

    def identity(self, strategy: Strategy, problem: ConvSpec) -> dict[str, Any]:
        return {"candidate_key": self.key(strategy, problem), "conv2d": self.to_dict(problem),
                "route": problem.route, "extra_bytes": problem.extra_bytes}

    def build(self, strategy: Strategy, problem: ConvSpec, target: Target, jit: bool | None,
              stages: dict[str, str] | None) -> Compiled:
        compiled = compile_driver(problem, problem.kernel_kcs, lambda lanes: build_conv(problem, lanes),
                                  strategy, target, jit=jit)
        return Compiled(compiled.code, compiled.vector_bits)

    def hot_function(self, problem: ConvSpec) -> str:
        """The micro-kernel for the GEMM routes; the direct and depthwise kernels' own loops."""
        return kernel_symbol(problem.kernel_kcs[0]) if problem.kernel_kcs else CONV

    def baselines(self, problem: ConvSpec, ops: Operands) -> list[Baseline]:
        """ONNX Runtime's Conv in both configurations (float32 only: its Conv has no int8 or bf16 form)."""
        if problem.dtype != "f32":
            return []
        x, w = to_nhwc(problem.shape, ops.a, problem.logical_filter(ops.b))
        return ort_conv(problem.shape, x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), problem.threads)

    def report_columns(self, records: list[dict[str, Any]]) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
        names = list(dict.fromkeys(b.get("name") for r in records for b in r.get("baselines") or []))
        return [("route", lambda r: str(r.get("route"))),
                ("extra MiB", lambda r: f"{(r.get('extra_bytes') or 0) / 2**20:.2f}"),
                *[(f"ours/{name} [95% CI]", lambda r, name=name: ratio_cell(r, name)) for name in names]]

    def table(self, records: list[Record]) -> str:
        """Each (layer, route) in its label, the route's extra memory, and ours against ONNX Runtime."""
        return baseline_table(records, [("hash", lambda r: str(r.extra.get("candidate_key", ""))[:8]),
                                        ("extra MiB", lambda r: f"{r.extra.get('extra_bytes', 0) / 2**20:.2f}")])


CONV2D = register(Conv2dKind())

