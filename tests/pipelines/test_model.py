"""The analytical model's choices for every row of the target table, and "auto" in configs."""
import textwrap

import pytest

from pipelines.model import MAX_KC, MIN_KC, NoModel, blocking, register_tile
from pipelines.targets import TARGETS
from runner.cli.main import main
from runner.config.experiment import load

ROWS = [t for t in TARGETS.values() if t.fma is not None]


@pytest.mark.parametrize("target", ROWS, ids=lambda t: t.name)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_the_tile_hides_the_latency_and_fits_the_registers(target, dtype):
    tile = register_tile(target, dtype)
    lanes = target.lanes(dtype)
    path = target.datapath(dtype)
    assert tile.nr % lanes == 0 and tile.accumulators == tile.mr * tile.nr // lanes
    assert tile.accumulators >= path.latency * path.ops_per_cycle(target.vector_bits)
    assert tile.registers <= target.vector_registers
    if path.latency == 4 and path.ops_per_cycle(target.vector_bits) == 2:
        assert tile.accumulators >= 8


@pytest.mark.parametrize("target", ROWS, ids=lambda t: t.name)
def test_the_blocks_fit_their_caches(target):
    tile = register_tile(target, "f32")
    b = blocking(target, "f32", tile.mr, tile.nr)
    l1, l2, l3 = target.caches
    assert MIN_KC <= b.kc <= MAX_KC and b.kc % 16 == 0 and b.mc % tile.mr == 0 and b.nc % tile.nr == 0
    assert b.kc * tile.nr * 4 <= l1 / 2 or b.kc == MIN_KC
    assert b.mc * b.kc * 4 <= l2 / 2 or b.mc == tile.mr
    assert l3 is None or b.nc * b.kc * 4 <= l3 / 2 or b.nc == tile.nr


def test_known_choices():
    assert (register_tile(TARGETS["znver3"]).mr, register_tile(TARGETS["znver3"]).nr) == (6, 16)  # BLIS's haswell
    assert register_tile(TARGETS["znver3"], bits=128).nr == 8  # narrower vectors, the same rows
    assert register_tile(TARGETS["sapphirerapids"]).nr == 32 and register_tile(TARGETS["neoverse-n1"]).mr % 4 == 0
    assert blocking(TARGETS["znver3"], "f32", 6, 16).kc == 256


def test_a_row_without_a_datapath_has_no_model():
    with pytest.raises(NoModel, match="no FMA datapath"):
        register_tile(TARGETS["x86-64-v3"])


CONFIG = """
[experiment]
name = "auto"
target = "{target}"

[[strategy]]
name = "model"
mr = "auto"
nr = "auto"
kc = {kc}
dtype = "{dtype}"
"""


def write(tmp_path, target="znver4", kc='"auto"', dtype="f32"):
    path = tmp_path / "auto.toml"
    path.write_text(textwrap.dedent(CONFIG.format(target=target, kc=kc, dtype=dtype)))
    return path


def test_auto_takes_the_models_tile_and_depth_for_the_configs_target(tmp_path):
    (strategy,) = load(write(tmp_path)).strategies
    tile = register_tile(TARGETS["znver4"])
    assert (strategy.kernel.mr, strategy.kernel.nr, strategy.kernel.kc) == (
        tile.mr, tile.nr, blocking(TARGETS["znver4"], "f32", tile.mr, tile.nr).kc)
    (fixed,) = load(write(tmp_path, kc=512)).strategies
    assert fixed.kernel.kc == 512 and fixed.kernel.mr == tile.mr


@pytest.mark.parametrize("target, dtype, message", [
    ("x86-64-v3", "f32", "strategy[0] (model).mr: \"auto\" needs the model, which cannot choose: x86-64-v3"),
    ("znver4", "bf16", "strategy[0] (model).mr: \"auto\" is the FMA model's (f32, f64), not 'bf16'"),
])
def test_auto_where_the_model_cannot_choose_is_one_line(tmp_path, capsys, target, dtype, message):
    assert main(["asm", str(write(tmp_path, target, dtype=dtype)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_report_sets_the_models_kernel_beside_the_best_measured():
    from runner.kinds.microkernel import MICROKERNEL

    def record(name, mr, nr, gflops, cpu="znver4"):
        return {"name": name, "gflops": gflops, "target_cpu": cpu, "vector_bits": 512,
                "strategy": {"kernel": {"mr": mr, "nr": nr, "kc": 256, "dtype": "f32"}}}
    records = [record("12x32", 12, 32, 110.0), record("14x32-k128", 14, 32, 104.5), record("6x16", 6, 16, 80.0),
               record("x", 6, 16, 50.0, cpu="no-such-core")]
    ((title, headers, rows),) = MICROKERNEL.report_summaries(records)
    assert rows == [["znver4", "f32", "512", "14x32x128", "14x32-k128: 104.50", "12x32: 110.00", "5.0%"]]


def test_the_report_sets_the_models_gemm_blocking_beside_the_best_measured():
    from kernels_mlir.gemm import GemmSpec
    from kernels_mlir.spec import KernelSpec
    from runner.kinds.gemm import GEMM

    def record(gflops, kc, mc, nc, traversal="blis", cpu="znver3", size=1024):
        spec = GemmSpec(size, size, size, KernelSpec(6, 16, kc), mc=mc, nc=nc, traversal=traversal)
        return {"name": f"{traversal}-{mc}-{nc}-{kc}", "gflops": gflops, "target_cpu": cpu, "gemm": spec.to_dict(),
                "shape": [size] * 3, "fraction_of_peak": gflops / 100}
    # znver3: kc 256 (B's panel in half of L1), mc 252 (half of L2), nc 2048 (half the L3 share; 1024 as run).
    records = [record(86.0, 512, 96, 4096), record(84.4, 256, 252, 2048), record(83.0, 256, 252, 4096),
               record(80.0, 256, 96, 1024, size=512), record(70.0, 256, 252, 2048, cpu="no-such-core"),
               {"name": "damaged", "gflops": 99.0, "gemm": {"m": 0}}]
    summaries = {title: rows for title, _, rows in GEMM.report_summaries(records)}
    rows = next(rows for title, rows in summaries.items() if "model's blocking" in title)
    assert rows == [["1024x1024x1024", "znver3", "6x16 f32", "252/1024/256", "84.40", "blis 96/1024/512: 86.00", "1.9%"],
                    ["512x512x512", "znver3", "6x16 f32", "252/512/256", "not measured", "blis 96/512/256: 80.00", "-"]]
