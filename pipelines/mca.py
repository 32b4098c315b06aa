"""llvm-mca on a kernel's hot loop: what the target's scheduling model predicts, for any target.

The model is LLVM's own (the same one the backend schedules with), so the prediction is
as good as that model. It cannot see the memory hierarchy: every load hits L1.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kernels_mlir.names import PEAK

from .asm_analysis import Instruction, fma_bits, fma_flops, hot_loop, is_fma
from .llvm_catalog import ToolMissing, llvm_tool
from .targets import Target

#: Simulated iterations: enough for the steady state to dominate the prologue of the simulation.
MCA_ITERATIONS = 200
#: Cycles per iteration this far above every throughput bound mean the loop waits on dependences.
LATENCY_BOUND_SLACK = 1.05


class McaError(RuntimeError):
    pass


def llvm_mca() -> Path:
    try:
        return llvm_tool("llvm-mca")
    except ToolMissing as exc:
        raise McaError(str(exc)) from None


@dataclass(frozen=True)
class McaPrediction:
    #: The scheduling model llvm-mca used, named by its resources' prefix (e.g. N1, A57, Zn3): LLVM
    #: models some cores with another core's model (cortex-a76 -> A57, apple-m1 -> Cyclone).
    model: str
    cycles_per_iteration: float
    #: Throughput bounds (cycles per iteration): each resource's pressure, and the dispatch width.
    bounds: dict[str, float]
    bottleneck: str
    #: The bottleneck with its resource named in words where a rule knows it (resource_words).
    bottleneck_words: str
    uops_per_iteration: float
    flops_per_iteration: int
    predicted_flops_per_cycle: float
    #: Against the target's theoretical peak at the loop's FMA width; None when the datapath is unknown.
    predicted_fraction_of_peak: float | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@lru_cache(maxsize=None)
def model_peak(target: Target, dtype: str, bits: int, instruction: str | None = None) -> float:
    """Flop (or op) per cycle the scheduling model predicts for the peak kernel itself (FMAs, or the
    dot-product `instruction`) at `bits`: the most it can predict for any kernel built on it."""
    from .compile import compile_peak  # compile imports this module's neighbours; keep the edge one-way
    loop = hot_loop(compile_peak(target, dtype, bits, instruction).assembly, PEAK)
    return predict(loop, target, dtype, instruction=instruction).predicted_flops_per_cycle


def model_ceiling(target: Target, dtype: str, bits: int, instruction: str | None = None) -> float | None:
    """model_peak as a fraction of the theoretical peak. Below 1.0 when the model gives the core fewer
    units than the datapath has (LLVM's Ice Lake and Sapphire Rapids models: one 512-bit FMA port)."""
    theoretical = target.peak_flops_per_cycle(dtype, bits, instruction)
    return None if theoretical is None else round(model_peak(target, dtype, bits, instruction) / theoretical, 4)


#: What scheduling models' unit names mean, in words: LLVM's .td files name units after the vendor's
#: pipe letters (Arm SOGs: B branch, S/M integer, L load/store, D store data, V vector; Zen: FP0-3,
#: ALU, AGU; A57's X/W are its two FP/ASIMD pipes; Intel by port number only, whose roles differ by core).
_UNIT_WORDS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), w) for p, w in (
    (r"^(?:N1|V1|V2)UnitV(\d)$", "vector/FP pipe V{0}"),
    (r"^(?:N1|V1|V2)UnitL(?:01|2)?\.?\d*$", "load/store pipe"),
    (r"^(?:N1|V1|V2)UnitD\.?\d*$", "store-data pipe"),
    (r"^(?:N1|V1|V2)UnitS\d?\.?\d*$", "integer pipe"),
    (r"^(?:N1|V1|V2)UnitM\d?$", "integer multi-cycle pipe"),
    (r"^(?:N1|V1|V2)UnitB\.?\d*$", "branch pipe"),
    (r"^(?:N1|V1|V2)UnitFlg\.?\d*$", "flags"),
    (r"^Zn\dFP([0-3])$", "FP pipe {0}"),
    (r"^Zn\dFP45\.?\d*$", "FP pipes 4-5"),
    (r"^Zn\dFPSt$", "FP store data"),
    (r"^Zn\dLoad\.?\d*$", "load pipe"),
    (r"^Zn\dStore\.?\d*$", "store pipe"),
    (r"^Zn\dLSU\.?\d*$", "load/store unit"),
    (r"^Zn\dAGU\d$", "address generation"),
    (r"^Zn\dALU\d$", "integer ALU"),
    (r"^A57Unit[XW]$", "FP/ASIMD pipe"),
    (r"^A57UnitL$", "load pipe"),
    (r"^A57UnitS$", "store pipe"),
    (r"^CyUnitV\.?\d*$", "vector pipe"),
    (r"^CyUnitLS\.?\d*$", "load/store pipe"),
    (r"^(?:SKX|ICX|HW|SPR)Port0?(\d+)$", "port {0}"),
))


def resource_words(name: str) -> str:
    """`V1UnitV0` -> `vector/FP pipe V0 (V1UnitV0)`; a name no rule knows stays as it is."""
    for pattern, words in _UNIT_WORDS:
        found = pattern.match(name)
        if found:
            return f"{words.format(*found.groups())} ({name})"
    return name


def _resource_name(raw: str) -> str:
    """llvm-mca's JSON names units of a group `N1UnitD.\\x00`; make that `N1UnitD.0`."""
    return "".join(str(ord(ch)) if ord(ch) < 32 else ch for ch in raw)


def predict(loop: list[Instruction], target: Target, dtype: str, cpu: str | None = None,
            instruction: str | None = None, scalable_bits: int = 128) -> McaPrediction:
    """Run llvm-mca on `loop` (one iteration of the hot loop) with the target's scheduling model;
    the fraction is of the FMA peak, or of the dot-product `instruction`'s. SVE registers are read as
    `scalable_bits` long (the core's vector length)."""
    if not loop:
        raise McaError("empty loop: nothing to analyse")
    source = "\n".join(inst.text for inst in loop) + "\n"
    proc = subprocess.run([str(llvm_mca()), f"-mtriple={target.triple}", f"-mcpu={cpu or target.cpu}",
                           f"-iterations={MCA_ITERATIONS}", "-json"],
                          input=source, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"status {proc.returncode}"
        raise McaError(f"llvm-mca failed: {detail}")
    report = json.loads(proc.stdout)
    region = report["CodeRegions"][0]
    summary = region["SummaryView"]
    cycles = summary["TotalCycles"] / summary["Iterations"]
    uops = summary["TotaluOps"] / summary["Iterations"]
    names = [_resource_name(r) for r in report["TargetInfo"]["Resources"]]
    count = len(region["Instructions"])
    pressure: dict[str, float] = defaultdict(float)
    for entry in region["ResourcePressureView"]["ResourcePressureInfo"]:
        if entry["InstructionIndex"] < count:  # the row past the last instruction is a total
            pressure[names[entry["ResourceIndex"]]] += entry["ResourceUsage"]
    bounds = {name: round(value, 3) for name, value in sorted(pressure.items())}
    bounds[f"dispatch (width {summary['DispatchWidth']})"] = round(uops / summary["DispatchWidth"], 3)
    model = os.path.commonprefix(names).removesuffix("Unit") or "?"
    busiest = max(bounds, key=bounds.get)
    bottleneck, words = busiest, resource_words(busiest)
    if cycles > LATENCY_BOUND_SLACK * bounds[busiest]:
        bottleneck, words = (f"dependences (latency): {cycles:.1f} cycles vs {bounds[busiest]:.1f} from {name}"
                             for name in (busiest, words))
    fmas = [inst for inst in loop if is_fma(inst)]
    flops = sum(fma_flops(inst, scalable_bits) for inst in fmas)
    per_cycle = flops / cycles
    peak = target.peak_flops_per_cycle(dtype, max((fma_bits(i, scalable_bits) for i in fmas), default=None),
                                       instruction)
    return McaPrediction(model, round(cycles, 3), bounds, bottleneck, words, round(uops, 3), flops, round(per_cycle, 3),
                         None if peak is None else round(per_cycle / peak, 4))
