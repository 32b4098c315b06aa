"""The per-call cost of SME micro-kernels, in instructions executed under qemu (emulated time means
nothing; instruction counts are exact): per k-step, per call, and of the call's own instructions those that
enter and leave streaming mode and those that move C through the ZA tiles.

    .venv/bin/python benchmarks/sme_call_cost.py [experiments/sme_arm.toml] [--target apple-m4] [--bits 512]
"""
from __future__ import annotations

import argparse

from tabulate import tabulate

from pipelines.targets import get_target
from runner.config.experiment import load
from runner.studies.streaming_cost import streaming_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="experiments/sme_arm.toml")
    parser.add_argument("--target", default="apple-m4")
    parser.add_argument("--bits", type=int, default=None, help="streaming vector length (default: the core's)")
    args = parser.parse_args()
    target = get_target(args.target)
    bits = args.bits or target.scalable_bits("sme") or 512
    rows = []
    for strategy in load(args.config).strategies:
        cost = streaming_cost(strategy, target, bits)
        entry_exit = sum(cost.streaming.values())
        rows.append([strategy.name, f"{cost.per_k_step:g}", cost.per_call, cost.switches, entry_exit,
                     ", ".join(f"{n} {what}" for what, n in cost.streaming.items()), cost.za_slices])
    print(f"SME micro-kernels on {target.label}, streaming vectors of {bits} bits: instructions executed under qemu")
    print(tabulate(rows, headers=["strategy", "per k-step", "per call", "switches", "streaming entry+exit",
                                  "of which", "ZA slice loads+stores"], disable_numparse=True))


if __name__ == "__main__":
    main()
