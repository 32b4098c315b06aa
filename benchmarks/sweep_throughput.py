"""How many candidate strategies a sweep evaluates per minute, end to end, on this machine.

A candidate is a kc=256 f32 micro-kernel strategy, or with `--gemm SIZE` a whole SIZE^3 f32 GEMM
(register tile, blocking, traversal and loop order drawn at random): compiled, verified against
NumPy and screened in an isolated worker (a GEMM against OpenBLAS, BLIS and the peak). The figure includes worker start-up, the peak measurement and
the leaders' full-length re-measurement: it is `ukl sweep` as a user runs it. Compile time per
strategy is reported separately (median and spread over the candidates).

With `--db postgresql://…` the same sweep is shared: `--workers` processes (2 by default, each
compiling with `--jobs`, 1 by default) join one new study on that server, as on several machines.

usage: .venv/bin/python benchmarks/sweep_throughput.py [--budget N] [--jobs J] [--leaders K]
                                                      [--gemm SIZE] [--db URL [--workers W]]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

SPACE = textwrap.dedent("""
    [experiment]
    name = "throughput"
    target = "host"
    [timing]
    min_sample_seconds = 0.05
    samples = 10
    [space]
    mr = [2, 4, 6, 8, 12]
    nr = [8, 16, 24, 32]
    kc = [256]
    dtype = ["f32"]
    unroll = [1, 2, 4, 8]
    scalar_loads = [true, false]
    legalize = [false, true]
    schedule = ["as-built", "loads-first", "interleave"]
    opt = ["none", "O1", "O2"]
    [sweep]
    method = "random"
    seed = 1
    leaders = {leaders}
""")

GEMM_SPACE = textwrap.dedent("""
    [experiment]
    name = "throughput-gemm"
    kind = "gemm"
    target = "host"
    [timing]
    min_sample_seconds = 0.05
    samples = 10
    [gemm]
    shapes = [[{size}, {size}, {size}]]
    [space]
    mr = [4, 6, 8, 12]
    nr = [16, 32]
    kc = [64, 128, 256]
    mc = [48, 96, 192]
    nc = [256, 1024]
    traversal = ["blis", "tiles", "direct"]
    inner = ["ir", "jr"]
    scalar_loads = [true]
    unroll = [1, 4]
    c_after_loop = [true]
    [sweep]
    method = "random"
    seed = 1
    leaders = {leaders}
""")

#: For scale (issue 13): XTC 0.3.2's random search over whole matmuls (compile, validate, time) at
#: 256^3 to 1024^3 on a Zen 4 of our kind.
XTC_GEMM_PER_MINUTE = (82, 110)
#: For scale (issue 6): the XTC research tool's MLIR backend, one job at a time, same machine kind.
XTC_PER_MINUTE = 77


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--leaders", type=int, default=5)
    parser.add_argument("--gemm", type=int, metavar="SIZE", help="sweep SIZE^3 GEMMs instead of micro-kernels")
    parser.add_argument("--db", help="a postgresql:// URL: run the sweep as a shared study on that server")
    parser.add_argument("--workers", type=int, default=2, help="with --db: worker processes (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "throughput.toml"
        config.write_text(GEMM_SPACE.format(size=args.gemm, leaders=args.leaders) if args.gemm
                          else SPACE.format(leaders=args.leaders))
        command = [sys.executable, "-m", "runner.cli", "sweep", str(config), "--budget", str(args.budget), "--json"]
        if args.db is None:
            commands = [command + ["--db", str(Path(tmp) / "t.sqlite")] + (["--jobs", str(args.jobs)] if args.jobs
                                                                           else [])]
        else:
            study = f"throughput-{os.getpid()}-{int(time.time())}"
            commands = [command + ["--db", args.db, "--study", study, "--jobs", str(args.jobs or 1)]] * args.workers
        logs = [Path(tmp) / f"err{i}" for i in range(len(commands))]
        lines: list[tuple[float, str]] = []  # (seconds since the start, JSON line), as they come
        started = time.perf_counter()
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=err.open("w"), text=True,
                                  env={**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"})
                 for c, err in zip(commands, logs)]
        readers = [threading.Thread(target=_timestamped, args=(proc.stdout, lines, started)) for proc in procs]
        for thread in readers:
            thread.start()
        for proc, thread in zip(procs, readers):
            proc.wait()
            thread.join()
        wall = time.perf_counter() - started
        outputs = [("", err.read_text()) for err in logs]
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode not in (0, 1):
            print(err, file=sys.stderr)
            return proc.returncode
    timed = [(at, r) for at, r in ((at, json.loads(line)) for at, line in lines) if r["type"] == "result"]
    records = [r for _, r in timed]
    screened = [r for r in records if r["phase"] == "screen"]
    screening = max(at for at, r in timed if r["phase"] == "screen")
    compile_times = sorted(r["compile_seconds"] for r in screened if r["compile_seconds"] is not None)
    statuses = {s: sum(r["status"] == s for r in screened) for s in sorted({r["status"] for r in screened})}
    rate = len(screened) / wall * 60
    finals = sum(r["phase"] == "final" for r in records)
    rescreens = sum(r["phase"] == "rescreen" for r in records)
    how = "one sweep on SQLite" if args.db is None else f"{args.workers} workers sharing a study on {args.db}"
    print(f"{how}: {len(screened)} candidates screened ({statuses}), {rescreens} noisy screens re-screened, "
          f"{finals} leaders re-measured")
    scale = (f"target >= {XTC_GEMM_PER_MINUTE[1]}: XTC's whole-matmul search, {XTC_GEMM_PER_MINUTE[0]}-"
             f"{XTC_GEMM_PER_MINUTE[1]}/min" if args.gemm else
             f"target >= 120; XTC's MLIR backend: about {XTC_PER_MINUTE}/min")
    print(f"screening: {len(screened)} candidates compiled, verified and screened in {screening:.1f} s (from the "
          f"start) -> {len(screened) / screening * 60:.0f} candidates/min ({scale})")
    print(f"wall time: {wall:.1f} s end to end, re-screens and leaders included -> {rate:.0f} candidates/min")
    p10, p90 = compile_times[len(compile_times) // 10], compile_times[9 * len(compile_times) // 10]
    print(f"compile time per strategy: median {statistics.median(compile_times):.3f} s, "
          f"p10 {p10:.3f} s, p90 {p90:.3f} s")
    for _, err in outputs:
        print(err.strip().splitlines()[-1])
    return 0


def _timestamped(stream, lines: list[tuple[float, str]], started: float) -> None:
    for line in stream:
        lines.append((time.perf_counter() - started, line))


if __name__ == "__main__":
    sys.exit(main())
