"""`ukl routes` and the route rule: a study stores every layer's routes and winner, the rule is fitted,
printed and written as predicates that choose what the tree chooses, and scored on held-out networks."""
import ctypes
import re
import sqlite3
import subprocess
import textwrap

import pytest

from runner.cli.main import main
from runner.studies.route_rule import FEATURES, HAND_WRITTEN, Layer, Rule, derive, takes

from .jsonl import of_type, results

#: (network, name, shape fields, {route: GFLOP/s}): depthwise layers (one with a channel multiplier of 2)
#: won by the depthwise kernel, big layers by igemm, small ones by im2col, in two networks (so one can be
#: held out). Every feature a tree may split on separates the classes the same way in both networks, so
#: the held-out choice is determined.
_SHAPES = [
    ("a", "dw1", dict(h=56, w=56, c=128, k=128, r=3, s=3, pad=1, groups=128), {"depthwise": 20, "im2col": 2,
                                                                                "igemm": 3}),
    ("a", "big1", dict(h=28, w=28, c=256, k=256, r=3, s=3, pad=1), {"im2col": 40, "igemm": 60}),
    ("a", "small1", dict(h=7, w=7, c=16, k=16, r=3, s=3, pad=1), {"im2col": 30, "igemm": 15}),
    ("b", "dw2", dict(h=28, w=28, c=128, k=256, r=3, s=3, pad=1, groups=128), {"depthwise": 18, "im2col": 2}),
    ("b", "big2", dict(h=14, w=14, c=256, k=256, r=3, s=3, pad=1), {"im2col": 45, "igemm": 62}),
    ("b", "small2", dict(h=7, w=7, c=24, k=32, r=3, s=3, pad=1), {"im2col": 28, "igemm": 12}),
]


def _layers() -> list[Layer]:
    full = lambda d: {"n": 1, "stride": 1, "pad": 0, "dilation": 1, "groups": 1, **d}  # noqa: E731
    return [Layer(name, network, full(shape), rates) for network, name, shape, rates in _SHAPES]


def test_the_derived_rule_finds_the_winners_and_its_predicates_choose_alike(tmp_path):
    layers = _layers()
    report = derive(layers)
    assert report.scoring == "leave one network out"
    assert report.regret["derived"] == pytest.approx(0.0)  # held out, each network's winners are still found
    assert set(report.regret) == {"derived", *HAND_WRITTEN}
    assert report.regret["MLAS"] > 0  # it never picks igemm, which wins the big layers here
    rule = report.rule
    namespace: dict = {}
    exec(rule.python(), namespace)  # noqa: S102 (our own generated code)
    source = tmp_path / "conv_route.c"
    source.write_text(rule.c())
    library = tmp_path / "conv_route.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(library), str(source),
                    "-include", "math.h", "-Dstatic=", "-lm"], check=True)
    c_route = ctypes.CDLL(str(library)).conv_route
    c_route.restype = ctypes.c_char_p
    for layer in layers:
        sh = layer.shape
        args = [sh[k] for k in ("n", "h", "w", "c", "k", "r", "s", "stride", "pad", "dilation", "groups")]
        assert namespace["conv_route"](*args) == rule(sh) == layer.best
        assert c_route(*args).decode() == rule(sh)
    assert all(f in rule.python() for f in ("log2_work", "depthwise"))
    # A leaf's first route may be one a layer cannot take: the next one is chosen, in all three forms.
    odd = {"n": 1, "h": 9, "w": 9, "c": 12, "k": 24, "r": 1, "s": 1, "stride": 2, "pad": 0, "dilation": 1, "groups": 12}
    args = [odd[k] for k in ("n", "h", "w", "c", "k", "r", "s", "stride", "pad", "dilation", "groups")]
    assert takes(rule(odd), odd) and namespace["conv_route"](*args) == rule(odd) == c_route(*args).decode()


def test_a_rule_picking_a_route_a_layer_did_not_run_pays_the_slowest():
    layer = _layers()[3]  # dw2: depthwise 18, im2col 2, no igemm
    assert layer.regret("igemm") == pytest.approx(18 / 2 - 1)
    assert layer.regret("depthwise") == 0


def test_one_network_is_scored_in_sample_and_says_so():
    report = derive([layer for layer in _layers() if layer.network == "a"])
    assert report.scoring.startswith("in-sample")
    assert len(FEATURES) == len(Rule.fit(_layers()).tree.feature_importances_)


STUDY = textwrap.dedent("""
    [experiment]
    name = "routes-tiny"
    kind = "conv2d"
    [timing]
    min_sample_seconds = 0.002
    samples = 10
    [conv2d]
    routes = ["im2col", "im2col_chunked", "igemm", "direct", "pointwise", "depthwise"]
    pack_bytes = 4096
    layers = [{ network = "x", name = "c3", h = 9, w = 11, c = 8, k = 16, r = 3, s = 3, pad = 1 },
              { network = "x", name = "pw", h = 8, w = 8, c = 16, k = 24, r = 1, s = 1 },
              { network = "y", name = "dw", h = 10, w = 10, c = 16, k = 16, r = 3, s = 3, pad = 1, groups = 16 }]
    [[strategy]]
    name = "4x8"
    mr = 4
    nr = 8
    kc = 64
""")


@pytest.mark.slow
def test_a_route_study_stores_every_layer_and_fits_the_rule(tmp_path, capsys):
    config = tmp_path / "routes.toml"
    config.write_text(STUDY)
    db, rules = tmp_path / "r.sqlite", tmp_path / "rule"
    assert main(["routes", str(config), "--db", str(db), "--rule-dir", str(rules), "--json"]) == 0
    out = capsys.readouterr().out
    layers = of_type(out, "layer")
    assert [layer["layer"] for layer in layers] == ["c3", "pw", "dw"]
    expected = {"c3": {"im2col", "im2col_chunked", "igemm", "direct"},
                "pw": {"im2col", "im2col_chunked", "igemm", "direct", "pointwise"},
                "dw": {"im2col", "im2col_chunked", "igemm", "direct", "depthwise"}}
    for layer in layers:
        assert set(layer["routes"]) == expected[layer["layer"]]  # every route the layer can take, none else
        assert layer["winner"] in layer["routes"]
        assert set(layer["ort"]) == {"ORT", "ORT-NCHWc"}
        assert all("ONNX Runtime 1.31.1" in o["configuration"] for o in layer["ort"].values())
        for figures in layer["routes"].values():
            assert 0 < figures["fraction"] and figures["vs_ort"][1] <= figures["vs_ort"][0] <= figures["vs_ort"][2]
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM route_studies").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM results WHERE kind = 'conv2d' AND status IN ('ok', 'disturbed')"
                       ).fetchone()[0] == sum(len(v) for v in expected.values())
    (rule,) = of_type(out, "rule")
    assert rule["scoring"] == "leave one network out" and set(rule["regret"]) == {"derived", "XNNPACK", "ACL", "MLAS"}
    assert (rules / "conv_route.py").read_text() == rule["python"] and (rules / "conv_route.c").exists()


@pytest.mark.parametrize("before, after, message", [
    ("h = 9, w = 11", "h = 0, w = 11", "conv2d.layers[0] (c3).h: must be an integer between 1"),
    ("c = 8, k = 16", "c = 8, k = 12, groups = 3", "groups: 3 must divide the input channels (8)"),
    ("r = 3, s = 3, pad = 1 }", "r = 13, s = 3, pad = 1 }", "the kernel (13 wide with dilation) is larger than the "
                                                             "padded input along h (9 + 2 x 1)"),
    ("pack_bytes = 4096", "pack_bytes = 100", "pack_bytes: must hold one line of the column matrix (288 bytes"),
    ("name = \"pw\"", "name = \"c3\"", "conv2d.layers: names must be unique, got ['c3']"),
    ("network = \"y\", ", "netwrok = \"y\", ", "conv2d.layers[2].netwrok: unknown key (did you mean 'network'?)"),
    ("routes = [", "routes = [\"winograd\", ", "conv2d.routes: must be a list of distinct routes"),
    ("pack_bytes = 4096", "pack_bytes = 4096\nlayout = \"nchw\"\nfilters = \"fhwc\"",
     "conv2d.filters: a nchw layout takes fchw filters, got 'fhwc'"),
])
def test_a_bad_conv_config_is_one_line_and_exit_2(tmp_path, capsys, before, after, message):
    config = tmp_path / "bad.toml"
    config.write_text(STUDY.replace(before, after, 1))
    assert main(["routes", str(config), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r.sqlite").exists()


def test_routes_refuses_a_config_of_another_kind(tmp_path, capsys):
    from .test_cli import GOOD, write
    assert main(["routes", str(write(tmp_path, GOOD)), "--db", str(tmp_path / "r.sqlite")]) == 2
    assert "is not for ukl routes (it studies conv2d configs)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_sweep_searches_routes_and_packing_bounds_of_a_layer(tmp_path, capsys):
    """The route and the packing bound are knobs of the kind: a point whose bound its route ignores is the
    same candidate as its twin (run once), and every candidate is verified before it is timed."""
    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent("""
        [experiment]
        name = "conv-sweep"
        kind = "conv2d"
        [timing]
        min_sample_seconds = 0.002
        samples = 10
        [conv2d]
        layers = [{ name = "c3", h = 9, w = 7, c = 8, k = 16, r = 3, s = 3, pad = 1 }]
        [sweep]
        method = "grid"
        leaders = 1
        [space]
        mr = [4]
        nr = [8]
        kc = [64]
        route = ["im2col", "im2col_chunked", "igemm"]
        pack_bytes = [1024, 4096]
    """))
    db = tmp_path / "s.sqlite"
    assert main(["sweep", str(config), "--db", str(db), "--jobs", "1"]) == 0
    capsys.readouterr()
    rows = sqlite3.connect(db).execute("SELECT name, status FROM results WHERE phase = 'screen'").fetchall()
    names = sorted(name.split("/", 1)[1] for name, _ in rows)
    assert names == ["igemm", "im2col", "im2col_chunked-pb1024", "im2col_chunked-pb4096"]
    assert {status for _, status in rows} <= {"ok", "disturbed"}


@pytest.mark.emulation
def test_mca_predicts_each_routes_hot_loop_on_arm(tmp_path, capsys):
    """On a conv2d config, `ukl mca` takes every (layer, route): each verified under qemu, then its hot
    loop predicted: the micro-kernel's for the GEMM routes, the depthwise kernel's own."""
    config = tmp_path / "routes.toml"
    config.write_text(STUDY)
    assert main(["mca", str(config), "--target", "neoverse-n1", "--json"]) == 0
    predictions = of_type(capsys.readouterr().out, "prediction")
    routes = {p["name"].rsplit("/", 1)[1]: p for p in predictions}
    assert len(predictions) == 14 and set(routes) == {"im2col", "im2col_chunked-pb4096", "igemm", "direct",
                                                       "pointwise", "depthwise"}
    assert all(p["verification"] == "qemu-aarch64" and p["verified"] for p in predictions)
    assert routes["depthwise"]["function"] == "ukl_conv" and routes["depthwise"]["cycles_per_k_step"] is None
    assert routes["direct"]["function"] == "ukl_conv"
    assert routes["igemm"]["function"].startswith("ukernel_k") and routes["igemm"]["cycles_per_k_step"] > 0
    assert all(0 < p["predicted_fraction_of_model_peak"] <= 1 for p in predictions)


def test_a_layer_with_fhwc_filters_runs_every_nhwc_route_against_onnx_runtime(tmp_path, capsys):
    config = tmp_path / "fhwc.toml"
    no_depthwise = re.sub(r"},\s*\{ network = \"y\".*?\}\]", "}]", STUDY, flags=re.S)
    config.write_text(no_depthwise.replace("pack_bytes = 4096", "pack_bytes = 4096\nfilters = \"fhwc\""))
    assert main(["run", str(config), "--db", str(tmp_path / "r.sqlite"), "--json"]) == 0
    records = results(capsys.readouterr().out)
    assert {r["route"] for r in records} == {"im2col", "im2col_chunked", "igemm", "direct", "pointwise"}
    for r in records:
        assert r["status"] in ("ok", "disturbed") and "-nhwc-fhwc/" in r["name"], r["name"]
        assert r["conv2d"]["filters"] == "fhwc" and {b["name"] for b in r["baselines"]} == {"ORT", "ORT-NCHWc"}
