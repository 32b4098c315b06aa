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


def test_a_host_the_table_lacks_gets_its_datapath_measured_and_the_model_chooses_on_it(monkeypatch):
    import dataclasses
    from pipelines.model import register_tile
    from runner.measure import datapath_cache
    from runner.measure.characterize import with_measured_datapath
    monkeypatch.setenv(datapath_cache.DIRECTORY_ENV, "")  # measured here, kept nowhere
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


class _Measured:
    """What characterize returns, as far as with_measured_datapath reads it."""
    calls = 0

    def __init__(self, *args, **kwargs):
        type(self).calls += 1

    def datapath(self, dtype):
        from pipelines.targets import Datapath
        return Datapath(2, 256, 4 if dtype == "f32" else 5)


@pytest.fixture
def unknown_host(monkeypatch, tmp_path):
    """A host the table lacks, with characterize counted, and the datapath file in tmp_path."""
    import dataclasses
    from runner.measure import characterize as module, datapath_cache
    monkeypatch.setattr(module, "characterize", _Measured)
    monkeypatch.setattr(_Measured, "calls", 0)
    monkeypatch.setenv(datapath_cache.DIRECTORY_ENV, "")  # restored (unset) after the test
    datapath_cache.use_directory(tmp_path)
    module.with_measured_datapath.cache_clear()
    yield dataclasses.replace(host_target(), fma=None, fma_by_dtype=(), row=None)
    module.with_measured_datapath.cache_clear()


def test_a_measured_datapath_is_kept_beside_the_database_for_the_next_process(unknown_host, tmp_path):
    from runner.measure import datapath_cache
    from runner.measure.characterize import with_measured_datapath
    first = with_measured_datapath(unknown_host)
    assert _Measured.calls == 1 and first.fma.latency == 4 and first.datapath("f64").latency == 5
    stored = json.loads((tmp_path / datapath_cache.FILE_NAME).read_text())
    assert stored == {datapath_cache.host_key(unknown_host): {
        "f32": {"pipes": 2, "bits_per_pipe": 256, "latency": 4}, "f64": {"pipes": 2, "bits_per_pipe": 256, "latency": 5}}}
    with_measured_datapath.cache_clear()  # as a new process would
    again = with_measured_datapath(unknown_host)
    assert _Measured.calls == 1 and again.fma == first.fma and "earlier process" in again.row
    assert [p.name for p in tmp_path.iterdir()] == [datapath_cache.FILE_NAME]  # nothing else written


@pytest.mark.parametrize("text, said", [("{not json", "not a datapath cache"), ("[1, 2]", "not a JSON object"),
                                        (None, "not a datapath: ")])
def test_a_damaged_datapath_file_is_said_in_one_line_and_measured_over(unknown_host, tmp_path, capsys, text, said):
    from runner.measure import datapath_cache
    from runner.measure.characterize import with_measured_datapath
    path = tmp_path / datapath_cache.FILE_NAME
    path.write_text(text if text is not None else json.dumps(
        {datapath_cache.host_key(unknown_host): {"f32": {"pipes": -1, "bits_per_pipe": 256, "latency": 4}}}))
    assert with_measured_datapath(unknown_host).fma.pipes == 2 and _Measured.calls == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and str(path) in err[0]
    assert datapath_cache.host_key(unknown_host) in json.loads(path.read_text())  # measured over


def test_the_datapath_file_goes_beside_the_commands_database(monkeypatch, tmp_path):
    from runner.measure import datapath_cache
    monkeypatch.setenv(datapath_cache.DIRECTORY_ENV, "")  # restored (unset) after the test
    db = tmp_path / "sub" / "r.sqlite"
    assert main(["report", "--db", str(db)]) == 2  # no such database; the directory is still the one named
    assert datapath_cache._path() == tmp_path / "sub" / datapath_cache.FILE_NAME
