"""The GEMM table on this machine: our GEMM, OpenBLAS, BLIS and MKL at 1 and all threads, ours over
each baseline with its 95% interval, and the fraction of the FMA peak of as many cores measured
alongside, per thread count, size and dtype.

Everything is timed in rotating alternation in one process (the lifecycle's `measure`), so the
ratios hold even when the machine's speed drifts. The micro-kernel and its blocking (kc, mc, nc)
default to the analytical model's for this host (pipelines.model); each can be set instead.

    .venv/bin/python benchmarks/gemm_table.py --sizes 256 512 1024 2048 --dtypes f32 f64 --threads 1 2
"""
from __future__ import annotations

import argparse
import os

import runner  # noqa: F401  (first: it configures OpenBLAS before NumPy loads it)
from kernels_mlir.gemm import GemmSpec
from kernels_mlir.spec import KernelSpec
from pipelines.model import blocking, register_tile
from pipelines.targets import host_target
from runner.cli.output import gemm_table
from runner.measure.lifecycle import Candidate, evaluate
from runner.measure.timing import TimingPolicy
from transforms.steps import CAfterLoop, Prefetch, ScalarLoads, UnrollK
from transforms.strategy import REGISTER_RESIDENT_STEPS, Strategy


def model_kernel(dtype: str, kc: int | None = None, mr: int | None = None) -> Strategy:
    """The model's register tile and kc for this host at its widest vectors, or `mr` rows of the same
    vectors and a given kc (a sweep such as experiments/gemm_large.toml may prefer others)."""
    host = host_target()
    tile = register_tile(host, dtype)
    mr, nr = mr or tile.mr, tile.nr
    kc = kc or blocking(host, dtype, mr, nr).kc
    steps = REGISTER_RESIDENT_STEPS + (ScalarLoads(), CAfterLoop(), UnrollK(4), Prefetch(16))
    return Strategy(f"{mr}x{nr}-k{kc}", KernelSpec(mr, nr, kc, dtype), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048], help="M = N = K")
    parser.add_argument("--dtypes", nargs="+", default=["f32"], choices=["f32", "f64"])
    parser.add_argument("--kc", type=int, help="k-blocking (default: the model's)")
    parser.add_argument("--mr", type=int, help="rows of the register tile (default: the model's)")
    parser.add_argument("--mc", type=int, help="rows of A's packed block (default: the model's)")
    parser.add_argument("--nc", type=int, help="columns of B's packed block (default: the model's)")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--min-sample-seconds", type=float, default=0.1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, len(os.sched_getaffinity(0))],
                        help="thread counts (default: 1 and every CPU this process may use)")
    parser.add_argument("--split", choices=["jc", "ic"], default="jc", help="the loop threads split")
    args = parser.parse_args()
    policy = TimingPolicy(args.min_sample_seconds, args.samples)
    host = host_target()
    print(f"{host.label}; each row times ours, OpenBLAS, BLIS, MKL and the FMA peak of as many cores, all at the "
          "row's thread count, in alternation")
    records = []
    for threads in dict.fromkeys(args.threads):
        for dtype in args.dtypes:
            strategy = model_kernel(dtype, args.kc, args.mr)
            k = strategy.kernel
            chosen = blocking(host, dtype, k.mr, k.nr, kc=k.kc)
            mc, nc = args.mc or chosen.mc, args.nc or chosen.nc
            for size in args.sizes:
                spec = GemmSpec(size, size, size, k, mc=mc - mc % k.mr, nc=nc - nc % k.nr, threads=threads,
                                split=args.split)
                records.append(evaluate(Candidate(strategy, spec, host), policy))
                print(f"  {records[-1].strategy.name}: {records[-1].status}", flush=True)
    print(gemm_table(records))


if __name__ == "__main__":
    main()
