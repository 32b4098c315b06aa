"""A route rule derived from measurements: a shallow (cost-sensitive) decision tree over a layer's features, printed,
written as C and Python predicates a library could paste, and scored by its regret against each
layer's measured best on networks it was not fitted on (leave one network out), beside the
hand-written rules of XNNPACK, Arm Compute Library and MLAS encoded on the same routes.

Regret on a layer: best route's GFLOP/s over the chosen route's, minus 1 (0 when the rule picks the
winner). A rule choosing a route the layer did not run (it cannot take it, or it failed) is charged
the slowest route that ran: a rule must know what a layer can take.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from kernels_mlir.conv import ConvShape, cannot_take

#: The features a rule may test, each computable from a Conv's attributes (the predicates compute them).
FEATURES = ("log2_work", "taps", "cg", "kg", "groups", "stride", "dilation", "depthwise", "pointwise")
#: A rule deep enough for route choices, shallow enough to read.
MAX_DEPTH = 3


def features(shape: dict[str, int]) -> list[float]:
    """FEATURES of a layer given by its ConvShape fields (its multiply-adds are half its flops)."""
    sh = ConvShape(**shape)
    return [math.log2(sh.flops // 2), sh.r * sh.s, sh.cg, sh.kg, sh.groups, sh.stride, sh.dilation,
            float(sh.depthwise), float(sh.pointwise)]


def _route(name: str) -> str:
    """A measured route's name without its strategy (`igemm/6x16` -> `igemm`)."""
    return name.split("/")[0]


@dataclass(frozen=True)
class Layer:
    """What a rule is fitted on and scored against: a layer's features and each route's best GFLOP/s."""

    name: str
    network: str
    shape: dict[str, int]
    gflops: dict[str, float]

    @classmethod
    def from_study(cls, study: dict[str, Any]) -> "Layer":
        rates: dict[str, float] = {}
        for name, figures in study["routes"].items():
            rates[_route(name)] = max(rates.get(_route(name), 0.0), figures["gflops"])
        return cls(study["layer"], study["network"], study["shape"], rates)

    @property
    def best(self) -> str:
        return max(self.gflops, key=self.gflops.__getitem__)

    def regret(self, route: str) -> float:
        chosen = self.gflops.get(route, min(self.gflops.values()))
        return self.gflops[self.best] / chosen - 1


def geomean_regret(layers: Sequence[Layer], chosen: Sequence[str]) -> float:
    """exp(mean log(best / chosen)) - 1 over `layers`, each given the route `chosen` for it."""
    return float(np.exp(np.mean([np.log1p(layer.regret(route)) for layer, route in zip(layers, chosen)]))) - 1


# --- the hand-written rules, on our route names ---

def takes(route: str, shape: dict[str, int]) -> bool:
    """Whether a layer can take a route (kernels_mlir.conv.cannot_take)."""
    return cannot_take(ConvShape(**shape), route) is None


def xnnpack_rule(shape: dict[str, int]) -> str:
    """XNNPACK: depthwise -> dwconv, 1x1 stride 1 -> gemm, else igemm."""
    return next(route for route in ("depthwise", "pointwise", "igemm") if takes(route, shape))


def acl_rule(shape: dict[str, int]) -> str:
    """Arm Compute Library: depthwise -> its depthwise kernel; 1x1 -> GEMM; fewer than 16 input channels
    or dilation -> im2col GEMM; else indirect GEMM."""
    sh = ConvShape(**shape)
    general = "im2col" if sh.cg < 16 or sh.dilation > 1 else "igemm"
    return next(route for route in ("depthwise", "pointwise", general) if takes(route, shape))


def mlas_rule(shape: dict[str, int]) -> str:
    """MLAS: pointwise -> direct GEMM, depthwise -> its depthwise kernel, else segmented (chunked) im2col."""
    return next(route for route in ("pointwise", "depthwise", "im2col_chunked") if takes(route, shape))


#: Routes only some layers can take (kernels_mlir.conv.cannot_take: the structural conditions).
RESTRICTED = ("pointwise", "depthwise")


def _c_takes(route: str) -> str:
    return {"pointwise": "pointwise", "depthwise": "groups == c"}.get(route, "1")


HAND_WRITTEN: dict[str, Callable[[dict[str, int]], str]] = {"XNNPACK": xnnpack_rule, "ACL": acl_rule,
                                                            "MLAS": mlas_rule}


@dataclass
class Rule:
    """A fitted tree and what it says, as text a human reads and code a library pastes."""

    tree: Any
    #: The routes, in the order of the tree's outputs (each leaf holds their mean log-regret).
    classes: list[str]

    @classmethod
    def fit(cls, layers: Sequence[Layer]) -> "Rule":
        """A regression tree on each route's log-regret (log of the layer's best GFLOP/s over the route's;
        a route the layer did not run counts as its slowest): each leaf chooses the route with the least
        mean log-regret over its layers. A tie between routes costs nothing whichever is chosen, and a
        layer where a wrong choice is expensive weighs accordingly (cost-sensitive, unlike a classifier
        of each layer's winner)."""
        from sklearn.tree import DecisionTreeRegressor
        routes = sorted({route for layer in layers for route in layer.gflops})
        x = np.array([features(layer.shape) for layer in layers])
        y = np.array([[math.log1p(layer.regret(route)) for route in routes] for layer in layers])
        tree = DecisionTreeRegressor(max_depth=MAX_DEPTH, random_state=0).fit(x, y)
        return cls(tree, routes)

    def _leaf_routes(self, values: np.ndarray) -> tuple[str, ...]:
        """A leaf's routes, least mean log-regret first, down to the first every layer can take."""
        ranked = [self.classes[i] for i in np.argsort(values, kind="stable")]
        general = next(i for i, route in enumerate(ranked) if route not in RESTRICTED)
        return tuple(ranked[:general + 1])

    def __call__(self, shape: dict[str, int]) -> str:
        """The leaf's first route this layer can take (a library knows which it can)."""
        return next(r for r in self._leaf_routes(self.tree.predict(np.array([features(shape)]))[0])
                    if takes(r, shape))

    def _walk(self, emit_if: Callable[[str, float, int], str], emit_leaf: Callable[[tuple[str, ...], int], str],
              emit_else: Callable[[int], str], emit_end: Callable[[int], str]) -> list[str]:
        t = self.tree.tree_
        lines: list[str] = []

        def routes(i: int) -> set[tuple[str, ...]]:
            """The route lists the leaves under node i choose from."""
            if t.children_left[i] == t.children_right[i]:
                return {self._leaf_routes(t.value[i][:, 0])}
            return routes(t.children_left[i]) | routes(t.children_right[i])

        def node(i: int, depth: int) -> None:
            chosen = routes(i)
            if len(chosen) == 1:  # a split whose sides choose alike says nothing: one leaf
                lines.append(emit_leaf(chosen.pop(), depth))
                return
            lines.append(emit_if(FEATURES[t.feature[i]], float(t.threshold[i]), depth))
            node(t.children_left[i], depth + 1)
            lines.append(emit_else(depth))
            node(t.children_right[i], depth + 1)
            end = emit_end(depth)
            if end:
                lines.append(end)
        node(0, 1)
        return lines

    def text(self) -> str:
        """The rule as `if feature <= threshold:` lines."""
        return "\n".join(self._walk(lambda f, th, d: f"{'  ' * (d - 1)}if {f} <= {th:.3g}:",
                                    lambda r, d: f"{'  ' * (d - 1)}-> {', else '.join(r)}",
                                    lambda d: f"{'  ' * (d - 1)}else:", lambda d: ""))

    def python(self) -> str:
        body = self._walk(lambda f, th, d: f"{'    ' * d}if {f} <= {th!r}:",
                          lambda r, d: f"{'    ' * d}return next(route for route in {r!r} if _takes(route))",
                          lambda d: f"{'    ' * d}else:", lambda d: "")
        return "\n".join([
            "import math", "", "",
            "def conv_route(n, h, w, c, k, r, s, stride=1, pad=0, dilation=1, groups=1):",
            '    """The route measured fastest for this layer by ukl (route rule fitted by `ukl routes`)."""',
            "    p = (h + 2 * pad - dilation * (r - 1) - 1) // stride + 1",
            "    q = (w + 2 * pad - dilation * (s - 1) - 1) // stride + 1",
            "    cg, kg = c // groups, k // groups",
            "    log2_work = math.log2(n * p * q * k * r * s * cg)",
            "    taps = r * s",
            "    depthwise = float(groups == c)",
            "    pointwise = float(r == s == stride == 1 and pad == 0)",
            "",
            "    def _takes(route):",
            "        return (route != 'pointwise' or pointwise) and (route != 'depthwise' or groups == c)",
            *body, ""])

    def c(self) -> str:
        body = self._walk(lambda f, th, d: f"{'    ' * d}if ({f} <= {th!r}) {{",
                          lambda r, d: "".join(f"{'    ' * d}if ({_c_takes(route)}) return \"{route}\";\n"
                                               for route in r).rstrip("\n"),
                          lambda d: f"{'    ' * d}}} else {{", lambda d: f"{'    ' * d}}}")
        return "\n".join([
            "#include <math.h>", "",
            "/* The route measured fastest for this layer by ukl (route rule fitted by `ukl routes`). */",
            "static const char *conv_route(int n, int h, int w, int c, int k, int r, int s, int stride, int pad,",
            "                              int dilation, int groups) {",
            "    int p = (h + 2 * pad - dilation * (r - 1) - 1) / stride + 1;",
            "    int q = (w + 2 * pad - dilation * (s - 1) - 1) / stride + 1;",
            "    double cg = c / groups, kg = k / groups, taps = r * s;",
            "    double log2_work = log2((double)n * p * q * k * r * s * (c / groups));",
            "    double depthwise = groups == c, pointwise = r == 1 && s == 1 && stride == 1 && pad == 0;",
            "    (void)log2_work; (void)cg; (void)kg; (void)taps; (void)depthwise; (void)pointwise;",
            *body, "    return \"im2col\";", "}", ""])


@dataclass(frozen=True)
class RuleReport:
    """The rule fitted on every layer, and each rule's regret on held-out networks."""

    rule: Rule
    #: "leave one network out", or "in-sample" when the layers come from one network only.
    scoring: str
    #: Rule name ("derived", then the hand-written ones) -> geometric-mean regret.
    regret: dict[str, float]
    #: Per layer: name, network, best route, and each rule's choice.
    choices: list[dict[str, str]]


def derive(layers: Sequence[Layer]) -> RuleReport:
    """Fit on every layer; score the derived rule leaving one network out (its held-out choices come
    from a tree fitted without that network) and the hand-written rules on every layer."""
    networks = sorted({layer.network for layer in layers})
    rule = Rule.fit(layers)
    if len(networks) > 1:
        scoring = "leave one network out"
        fitted = {network: Rule.fit([layer for layer in layers if layer.network != network]) for network in networks}
        derived = [fitted[layer.network](layer.shape) for layer in layers]
    else:
        scoring = "in-sample (one network: nothing to hold out)"
        derived = [rule(layer.shape) for layer in layers]
    chosen = {"derived": derived, **{name: [choose(layer.shape) for layer in layers]
                                     for name, choose in HAND_WRITTEN.items()}}
    regret = {name: geomean_regret(layers, routes) for name, routes in chosen.items()}
    choices = [{"layer": layer.name, "network": layer.network, "best": layer.best,
                **{name: routes[i] for name, routes in chosen.items()}} for i, layer in enumerate(layers)]
    return RuleReport(rule, scoring, regret, choices)
