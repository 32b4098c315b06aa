"""NEON vs SVE vs SME micro-kernels side by side, per Arm core of the target table: each family's best
f32 kernel by predicted fraction of peak (llvm-mca with the core's scheduling model for NEON and SVE;
the instruction-mix bound for SME, for which LLVM has no model), with the registers or ZA tiles it uses
and its spills. Every kernel is verified under qemu first (SVE and SME at the core's vector length).

    .venv/bin/python benchmarks/arm_kernel_table.py [--cores neoverse-v1 neoverse-v2 a64fx apple-m4]
"""
from __future__ import annotations

import argparse

from tabulate import tabulate

from pipelines.targets import get_target
from runner.cli.mca import predict_candidates
from runner.config.experiment import load
from runner.measure.lifecycle import Candidate

#: Each family's kernels: the NEON seed table, and the SVE and SME configs.
FAMILIES = {"NEON": "experiments/seed_table_arm.toml", "SVE": "experiments/sve_arm.toml",
            "SME": "experiments/sme_arm.toml"}


def best(config: str, target_name: str, dtype: str) -> dict | str:
    """The family's best verified kernel of `dtype` on the core, or why there is none."""
    target = get_target(target_name)
    strategies = [s for s in load(config).strategies if s.kernel.dtype == dtype]
    if not strategies:
        return f"(no {dtype} kernel in {config})"
    kind = strategies[0].kernel.scalable
    if kind is not None and target.lacks_scalable(kind):
        return "(the core has none)"
    records = [r for r in predict_candidates([Candidate.microkernel(s, target) for s in strategies])
               if r["status"] == "ok" and r["verified"]]
    scored = [r for r in records if r["predicted_fraction_of_peak"] is not None]
    return max(scored or records, key=lambda r: r["predicted_fraction_of_peak"] or 0, default="(none verified)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", nargs="+", default=["neoverse-v1", "neoverse-v2", "a64fx", "apple-m4"])
    parser.add_argument("--dtype", default="f32")
    args = parser.parse_args()
    rows = []
    for core in args.cores:
        for family, config in FAMILIES.items():
            r = best(config, core, args.dtype)
            if isinstance(r, str):
                rows.append([core, family, r, "", "", "", "", ""])
                continue
            fraction = r["predicted_fraction_of_peak"]
            used = f"ZA {r['za_tiles_used']}/4 + {r['vector_registers_used']} z" if r.get("za_tiles_used") else \
                f"{r['vector_registers_used']}/{r['vector_registers_available']}"
            rows.append([core, family, r["name"], "-" if fraction is None else f"{fraction:.1%}",
                         r["model"], used, r["spills"], r["bottleneck_words"] or ""])
    print(f"Best {args.dtype} micro-kernel per family and core (predicted; verified under qemu)")
    print(tabulate(rows, headers=["core", "family", "kernel", "predicted of peak", "predicted by", "registers",
                                  "spills", "limit"], disable_numparse=True))


if __name__ == "__main__":
    main()
