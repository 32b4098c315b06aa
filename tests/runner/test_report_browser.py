"""The HTML report in a real browser: Debian's Chromium, headless (installed by `make test`)."""
import re
import shutil
import subprocess
import textwrap

import numpy as np
import pytest
from PIL import Image

from runner.cli.main import main

from .test_cli import write

CHROMIUM = "chromium"
#: Running as root (CI containers) needs --no-sandbox; nothing here is untrusted.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]

SWEEP = textwrap.dedent("""
    [experiment]
    name = "browser-sweep"
    [timing]
    min_sample_seconds = 0.005
    samples = 10
    [sweep]
    leaders = 2
    [space]
    mr = [4, 6]
    nr = [8, 16]
    kc = [32, 64]
    scalar_loads = [false, true]
""")


def test_chromium_is_installed():
    assert shutil.which(CHROMIUM), "run `make system-packages` (the test target does)"


@pytest.mark.slow
def test_report_of_a_real_sweep_renders_in_headless_chromium(tmp_path, capsys):
    db, html, shot = tmp_path / "r.sqlite", tmp_path / "report.html", tmp_path / "shot.png"
    assert main(["sweep", str(write(tmp_path, SWEEP)), "--db", str(db)]) == 0
    assert main(["report", "--db", str(db), "--html", str(html)]) == 0
    capsys.readouterr()
    images = html.read_text().count("<img ")
    assert images == 7  # fraction of peak, heatmap, GFLOP/s vs kc, paired knob effects, Optuna's three
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert f'data-loaded="{images}"' in body and "data-broken" not in body, body  # every image decoded
    assert "<title>ukernel-lab report: browser-sweep</title>" in dom
    assert re.search(r'<tr class="final">', dom) and re.search(r'<tr class="screening">', dom)
    subprocess.run([CHROMIUM, *FLAGS, "--window-size=1400,1800", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1800, 1400)
    assert (pixels < 200).mean() > 0.02 and pixels.std() > 20  # text, tables and plots: not a blank page
    columns = np.nonzero((pixels < 200).any(axis=0))[0]
    assert columns.max() - columns.min() > 0.6 * pixels.shape[1]  # the page uses its width


@pytest.mark.slow
def test_report_of_gemms_beside_micro_kernels_renders_in_headless_chromium(tmp_path, capsys):
    from .test_gemm_experiment import GEMM, KERNEL
    db, html = tmp_path / "r.sqlite", tmp_path / "report.html"
    kernels = "[experiment]\nname = \"kernels\"\n[timing]\nmin_sample_seconds = 0.002\nsamples = 10\n" + KERNEL
    assert main(["run", str(write(tmp_path, kernels, "k.toml")), "--db", str(db)]) == 0
    assert main(["run", str(write(tmp_path, GEMM, "g.toml")), "--db", str(db)]) == 0
    assert main(["report", "--db", str(db), "--html", str(html)]) == 0
    capsys.readouterr()
    text = html.read_text()
    assert '<table class="kind-microkernel">' in text and '<table class="kind-gemm">' in text
    assert "GFLOP/s per shape beside each baseline" in text and "ours/OpenBLAS [95% CI]" in text
    images = text.count("<img ")
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert images >= 2 and f'data-loaded="{images}"' in body and "data-broken" not in body, body
