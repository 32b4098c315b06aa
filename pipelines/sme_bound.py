"""What an SME k loop can reach, bounded from its instruction mix: LLVM 22 has no scheduling model for SME,
so llvm-mca cannot predict one. This is a bound, not a model.

Per iteration of the hot loop, the outer products must issue at the core's cited rate, and each ZA tile's
chain of outer products waits the instruction's latency between links. The larger of the two is the
fewest cycles the loop can take; everything else in it (panel loads, the interleaving a widening product
needs, loop control) is counted and shown beside it, not priced: no cited figure says what it costs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from .asm_analysis import Instruction, classify, fma_flops, is_outer_product, za_tile
from .targets import Target


@dataclass(frozen=True)
class SmeBound:
    #: The outer-product instruction the loop is built on (fmopa, bfmopa, smopa).
    instruction: str
    outer_products_per_iteration: int
    za_tiles: int
    #: The rest of the loop by class (load, za move, other, ...), per iteration.
    mix: dict[str, int]
    flops_per_iteration: int
    #: From the row's cited rate; None where the row cites none (then only the counts stand).
    issue_cycles: float | None
    latency_cycles: float | None

    @property
    def cycles_per_iteration(self) -> float | None:
        if self.issue_cycles is None:
            return None
        return max(self.issue_cycles, self.latency_cycles)

    @property
    def fraction_of_peak(self) -> float | None:
        """Outer-product throughput reached at the bound: issue time over the bound, at most 1."""
        cycles = self.cycles_per_iteration
        return None if cycles is None else round(self.issue_cycles / cycles, 4)

    @property
    def limit(self) -> str:
        if self.issue_cycles is None:
            return "no cited outer-product rate for this core: instruction counts only"
        if self.latency_cycles > self.issue_cycles:
            return (f"accumulator latency: {self.za_tiles} ZA tile(s) for {self.outer_products_per_iteration} "
                    f"{self.instruction} per iteration")
        return f"{self.instruction} issue rate"

    def to_json(self) -> dict:
        return {**asdict(self), "cycles_per_iteration": self.cycles_per_iteration,
                "fraction_of_peak": self.fraction_of_peak, "limit": self.limit}


def sme_bound(loop: list[Instruction], target: Target, svl_bits: int) -> SmeBound:
    """The bound of one hot-loop iteration `loop` on `target`, whose streaming vectors are `svl_bits` long."""
    products = [inst for inst in loop if is_outer_product(inst)]
    if not products:
        raise ValueError("no outer product in the loop: not an SME k loop")
    instruction = Counter(inst.mnemonic for inst in products).most_common(1)[0][0]
    per_tile = Counter(za_tile(inst) for inst in products)
    mix = Counter(classify(inst) for inst in loop if not is_outer_product(inst))
    rate = None if target.sme is None else target.sme.rate(instruction)
    issue = None if rate is None else len(products) / rate.per_cycle
    latency = None if rate is None else float(rate.latency * max(per_tile.values()))
    return SmeBound(instruction, len(products), len(per_tile), dict(mix),
                    sum(fma_flops(inst, svl_bits) for inst in products), issue, latency)


def outer_product_peak(target: Target, instruction: str, flops_per_instruction: int) -> float | None:
    """Flop (or op) per cycle of `instruction` at its cited rate; None where the row cites none."""
    rate = None if target.sme is None else target.sme.rate(instruction)
    return None if rate is None else rate.per_cycle * flops_per_instruction
