"""The GEMM baselines: BLIS (Debian's serial build, installed by `make test`) is loaded, computes the
right product, and names its configuration; OpenBLAS names its kernel family."""
import platform

import numpy as np
import pytest

from kernels_mlir.gemm import GemmSpec
from kernels_mlir.spec import KernelSpec
from runner.kinds import kind_of
from runner.measure import baselines
from runner.measure.verify import check_call


def test_blis_is_installed_and_names_its_configuration():
    assert baselines.blis_library() is not None, "run `make system-packages` (the test target does)"
    configuration = baselines.blis_configuration()
    assert configuration.startswith("BLIS 0.") and configuration.endswith(", serial)")


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (13, 17, 19), (97, 131, 77)])
def test_blis_computes_the_product_numpy_does(shape, dtype):
    spec = GemmSpec(*shape, KernelSpec(1, 1, 1, dtype), mc=1, nc=1)
    result = check_call(lambda ops: baselines._blis_call(ops.a, ops.b, ops.c)(), spec, seed=sum(shape))
    assert result.correct, result.message


#: Every GEMM baseline of this machine (MKL's wheel is x86-64 only).
LIBRARIES = ["OpenBLAS", "BLIS", *(["MKL"] if platform.machine() == "x86_64" else [])]


def test_a_gemm_is_measured_against_every_baseline():
    spec = GemmSpec(32, 48, 64, KernelSpec(6, 16, 256))
    ops = spec.operands(1)
    names = [b.name for b in kind_of(spec).baselines(spec, ops)]
    assert names == LIBRARIES
    assert baselines.openblas_configuration().startswith("OpenBLAS ")
    micro = KernelSpec(4, 8, 16)
    assert kind_of(micro).baselines(micro, ops) == []
    lowp = GemmSpec(32, 48, 64, KernelSpec(4, 16, 64, "u8s8"))  # neither library has an int8 GEMM
    assert kind_of(lowp).baselines(lowp, lowp.operands(1)) == []
    for baseline in kind_of(spec).baselines(spec, ops):
        baseline.run(2)
        assert 0 < baseline.call_overhead() < 1e-3
        assert np.isfinite(ops.c).all()


def test_a_gemm_run_without_blis_says_what_to_install_in_one_line(tmp_path, capsys, monkeypatch):
    from runner.cli.main import main
    from .test_cli import write
    from .test_gemm_experiment import GEMM
    monkeypatch.setitem(baselines.BLIS_BUILDS, "serial", str(tmp_path / "missing" / "libblis.so.4"))
    baselines.blis_library.cache_clear()
    try:
        assert main(["run", str(write(tmp_path, GEMM)), "--db", str(tmp_path / "r.sqlite")]) == 2
    finally:
        baselines.blis_library.cache_clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "install Debian's libblis4-serial" in err


def test_the_openblas_label_says_what_ran_not_what_the_environment_asked(monkeypatch):
    """Some machines set OPENBLAS_CORETYPE (Haswell on a Zen 5): the label names the family OpenBLAS
    reports running; the variable is named as forcing it only when it is that family."""
    from threadpoolctl import threadpool_info
    running = next(i["architecture"] for i in threadpool_info() if i.get("internal_api") == "openblas")
    monkeypatch.setenv("OPENBLAS_CORETYPE", running)
    assert baselines.openblas_configuration().endswith(f"({running}, forced by OPENBLAS_CORETYPE)")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "NoSuchCore")  # OpenBLAS ignores it (and chose at load anyway)
    label = baselines.openblas_configuration()
    assert "forced" not in label and label.endswith(f"({running}, OPENBLAS_CORETYPE='NoSuchCore' not applied)")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert baselines.openblas_configuration().endswith(f"({running})")


def test_mkl_is_loaded_verified_against_numpy_and_named():
    from runner.measure.mkl import configuration, mkl_gemm, product
    if platform.machine() != "x86_64":
        pytest.skip("the mkl wheel is x86-64 only: GEMM baselines skip it with one line elsewhere")
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a, b = rng.uniform(-1, 1, (37, 29)).astype(dtype), rng.uniform(-1, 1, (29, 41)).astype(dtype)
        out = np.zeros((37, 41), dtype)
        product(a, b, out)()
        assert np.allclose(out, a.astype(np.float64) @ b, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    base = mkl_gemm(a, b, out)
    assert base.name == "MKL" and configuration().startswith("MKL 20") and "code path, 1 thread" in base.configuration
