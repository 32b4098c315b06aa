"""The measured datapath: structure that holds on any core and under load, the table check, the CLI."""
import json

import pytest

from pipelines.targets import TARGETS, host_target
from runner.cli.main import main
from runner.measure.characterize import Characterization, WidthFigures, cache_sizes, characterize
from tests.runner.jsonl import one


def test_a_dependent_chain_is_slower_and_the_datapath_is_whole_numbers():
    found = characterize(host_target(), ("f32",), rounds=5, min_sample_seconds=0.002)
    assert found.clock_ghz > 0
    assert {w.bits for w in found.widths} == set(host_target().widths)
    for w in found.widths:  # one chain issues an FMA per latency; many issue one per pipe
        assert w.latency_cycles * w.ops_per_cycle > 2, w
    path = found.datapath("f32")
    assert all(isinstance(v, int) and v > 0 for v in (path.pipes, path.bits_per_pipe, path.latency))
    assert path.bits_per_pipe in host_target().widths
    # Every dot-product instruction the host runs is characterized (none on an AVX2-only core), likewise.
    host = host_target()
    assert {d.dtype for d in found.dots} == {name for name, _ in host.dots if not host.lacks(name)}
    assert all(d.latency_cycles * d.ops_per_cycle > 1 for d in found.dots)


def test_a_capped_host_characterizes_as_avx2(monkeypatch):
    monkeypatch.setenv("UKL_HOST_ISA", "avx2")
    capped = host_target()
    found = characterize(capped, ("f32",), rounds=3, min_sample_seconds=0.002)
    assert max(w.bits for w in found.widths) == 256 and found.datapath("f32").bits_per_pipe <= 256


def figures(ops_by_bits: dict[int, float], latency: float = 4.0) -> Characterization:
    return Characterization("x", 3.0, tuple(WidthFigures("f32", b, latency, ops, 28) for b, ops in ops_by_bits.items()),
                            ())


def test_the_datapath_reads_half_rate_wide_ops_as_narrow_pipes():
    zen4 = figures({128: 2.0, 256: 1.98, 512: 1.0})
    assert (zen4.datapath("f32").pipes, zen4.datapath("f32").bits_per_pipe) == (2, 256)
    assert zen4.disagreements(TARGETS["znver4"]) == []
    said = zen4.disagreements(TARGETS["sapphirerapids"])
    assert said == ["bits_per_pipe: the table says 512 bits, measured 256 bits"]
    assert figures({128: 1.0, 256: 1.0}, latency=5.2).disagreements(TARGETS["znver3"]) == [
        "pipes: the table says 2, measured 1", "latency: the table says 4 cycles, measured 5 cycles"]


def test_cache_sizes_come_from_sysfs_first_level_first():
    caches = cache_sizes()
    if caches:  # sysfs has them on every Linux machine of ours; a container may hide them
        assert caches[0][0] == "L1d" and all(size > 0 for _, size in caches)
        assert [name[1] for name, _ in caches] == sorted(name[1] for name, _ in caches)


def test_peak_characterize_prints_one_line_with_its_verdict(capsys):
    assert main(["peak", "--characterize", "--json", "--samples", "10", "--min-sample-seconds", "0.002"]) == 0
    found = one(capsys.readouterr().out, "characterization")
    assert set(found["datapaths"]) == {"f32", "f64"}
    assert found["verdict"].startswith(("agrees with", "disagrees with", "no table row"))
    json.dumps(found)


def test_a_host_the_table_lacks_gets_its_datapath_measured_and_the_model_chooses_on_it():
    import dataclasses
    from pipelines.model import register_tile
    from runner.measure.characterize import with_measured_datapath
    unknown = dataclasses.replace(host_target(), fma=None, fma_by_dtype=(), row=None)
    measured = with_measured_datapath(unknown)
    assert measured.fma is not None and measured.fma.pipes >= 1 and measured.row.startswith("measured: ")
    assert "measured" in measured.label and measured.datapath("f64") is not None
    assert register_tile(measured).accumulators >= measured.fma.latency * measured.fma.ops_per_cycle(measured.vector_bits)
    assert with_measured_datapath(TARGETS["znver3"]) is TARGETS["znver3"]  # a row the table has stands


def test_mca_on_a_host_the_table_lacks_predicts_against_the_measured_datapath(monkeypatch, capsys):
    import dataclasses
    import runner.cli.main as cli
    from pipelines import targets
    unknown = dataclasses.replace(host_target(), fma=None, fma_by_dtype=(), row=None)
    monkeypatch.setattr(cli, "get_target_or_fail", lambda name: unknown if name == "host" else targets.get_target(name))
    assert main(["mca", "experiments/default.toml", "--strategy", "6x16-u4", "--json"]) == 0
    record = one(capsys.readouterr().out, "prediction")
    assert record["predicted_fraction_of_peak"] is not None and record["theoretical_flops_per_cycle"] > 0
