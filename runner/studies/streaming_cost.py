"""What one call of an SME micro-kernel costs beyond its k loop, in instructions executed under qemu.

Emulated time means nothing, but qemu executes exactly what the core would: two calls that differ only
in kc give the instructions of one k-step (their difference over the kc difference) and of the call
itself (the rest). Of the call's own instructions, those that exist for streaming mode are named: the
switch in and out (smstart/smstop), the check for a caller's lazy ZA save (TPIDR2_EL0), and the
callee-saved FP registers a mode switch would clobber (d8-d15, saved and restored).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace

from kernels_mlir.spec import KernelSpec
from pipelines.compile import compile_strategy
from pipelines.targets import Target
from runner.emulation.qemu import executed_instructions
from transforms.strategy import Strategy

#: Executed instructions that exist because the kernel enters streaming mode with a fresh ZA, by what for.
_STREAMING = {
    "smstart/smstop": re.compile(r"^sms(tart|top)\b"),
    "lazy-save check (TPIDR2_EL0)": re.compile(r"TPIDR2_EL0"),
    "d8-d15 saved and restored": re.compile(r"^(stp|ldp) d(8|9|1[0-5]), d(8|9|1[0-5])\b"),
}
#: Loads and stores of ZA tile slices: C in and out of the tiles.
_ZA_SLICE = re.compile(r"^(ld1|st1)[bhwd] \{za\d")


@dataclass(frozen=True)
class StreamingCost:
    strategy: str
    vector_bits: int
    per_k_step: float
    per_call: int
    #: Of per_call: entering and leaving streaming mode (by what for), and C's ZA tile slice loads and stores.
    streaming: dict[str, int]
    za_slices: int

    @property
    def switches(self) -> int:
        """Mode switches per call: smstart and smstop come as `sm` and `za` pairs."""
        return self.streaming.get("smstart/smstop", 0) // 4


def streaming_cost(strategy: Strategy, target: Target, vector_bits: int, kcs: tuple[int, int] = (16, 32)
                   ) -> StreamingCost:
    """Instructions per k-step and per call of `strategy`'s kernel at two depths (same code otherwise)."""
    totals, calls = [], []
    for kc in kcs:
        at = replace(strategy, kernel=replace(strategy.kernel, kc=kc))
        code = compile_strategy(at, target, jit=False).code
        fixed: KernelSpec = at.kernel.at_length(vector_bits)
        counts = executed_instructions(code.object_code, fixed, fixed.operands(0), vector_bits)
        totals.append(sum(counts.values()))
        calls.append(counts)
    per_k = (totals[1] - totals[0]) / (kcs[1] - kcs[0])
    per_call = round(totals[0] - per_k * kcs[0])
    streaming = Counter()
    for text, times in calls[0].items():
        for what, pattern in _STREAMING.items():
            if pattern.search(text):
                streaming[what] += times
    za = sum(times for text, times in calls[0].items() if _ZA_SLICE.match(text))
    return StreamingCost(strategy.name, vector_bits, per_k, per_call, dict(streaming), za)
