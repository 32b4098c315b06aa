"""`ukl mca`: predicted throughput (llvm-mca) of each strategy's hot loop, next to what the loop looks like.

Every kernel is also run once to prove it correct: natively when the target runs here,
under qemu-aarch64 for Arm targets. A kernel that fails gets no prediction.
"""
from __future__ import annotations

from typing import Iterator

from kernels_mlir.names import is_microkernel
from pipelines.asm_analysis import hot_loop
from pipelines.mca import McaError, model_ceiling, model_peak, predict
from pipelines.sme_bound import outer_product_peak, sme_bound

from runner.cli.asm import annotated_loop, header
from runner.emulation.qemu import EmulatedFailure
from runner.measure.lifecycle import Built, Candidate, build_or_record, check, one_line
from runner.measure.record import Record

_PREDICTION_KEYS = ("model", "cycles_per_iteration", "cycles_per_k_step", "bounds", "bottleneck", "bottleneck_words",
                    "uops_per_iteration", "flops_per_iteration", "predicted_flops_per_cycle",
                    "predicted_fraction_of_peak", "model_ceiling", "predicted_fraction_of_model_peak")


def _sme_record(built: Built, symbol: str) -> dict:
    """An SME kernel's prediction: the instruction-mix bound (LLVM has no SME scheduling model), labelled so."""
    target, svl = built.candidate.target, built.vector_bits
    loop = hot_loop(built.code.assembly, symbol)
    bound = sme_bound(loop, target, svl)
    per_instruction = bound.flops_per_iteration // bound.outer_products_per_iteration
    peak = outer_product_peak(target, bound.instruction, per_instruction)
    cycles = bound.cycles_per_iteration
    per_product = ", ".join(f"{count / bound.outer_products_per_iteration:g} {kind}"
                            for kind, count in sorted(bound.mix.items()))
    words = f"{bound.limit}; per {bound.instruction}: {per_product}"
    return {"model": f"SME instruction-mix bound at SVL {svl}",
            "cycles_per_iteration": cycles, "bounds": {"outer-product issue": bound.issue_cycles,
                                                       "accumulator latency": bound.latency_cycles},
            "bottleneck": bound.limit, "bottleneck_words": words,
            "flops_per_iteration": bound.flops_per_iteration,
            "predicted_flops_per_cycle": None if cycles is None else round(bound.flops_per_iteration / cycles, 3),
            "predicted_fraction_of_peak": bound.fraction_of_peak, "theoretical_flops_per_cycle": peak,
            "cycles_per_k_step": None if cycles is None else round(cycles / _k_steps(built, bound.flops_per_iteration), 3),
            "sme_bound": bound.to_json()}


def _k_steps(built: Built, flops: int) -> float:
    """k-steps one hot-loop iteration covers: its flops over one k-step's (2 x mr x nr at the length read)."""
    kernel = built.candidate.strategy.kernel.at_length(built.vector_bits)
    return flops / (2 * kernel.mr * kernel.nr)


def predict_candidates(candidates: list[Candidate]) -> Iterator[dict]:
    """Each candidate (a micro-kernel, or a problem of another kind: its kind names the function whose
    hottest loop is its hot loop) built, run once to prove it right, then its hot loop predicted."""
    for candidate in candidates:
        strategy, target = candidate.strategy, candidate.target
        symbol = candidate.kind.hot_function(candidate.problem)
        record = {**header(candidate.named, target), "status": "ok", "verified": None, "verification": "",
                  "error": "", "theoretical_flops_per_cycle": None, "function": symbol,
                  **dict.fromkeys(_PREDICTION_KEYS)}
        built = build_or_record(candidate)
        if isinstance(built, Record):
            yield {**record, "status": built.status, "error": built.error}
            continue
        record.update(annotated_loop(built.code, target, symbol=symbol))
        record["theoretical_flops_per_cycle"] = target.peak_flops_per_cycle(strategy.kernel.dtype, built.vector_bits,
                                                                            strategy.instruction)
        try:
            result, how = check(built)
        except EmulatedFailure as exc:
            yield {**record, "status": "crash", "verified": False, "verification": "qemu-aarch64",
                   "error": one_line(exc)}
            continue
        record.update(verified=None if result is None else result.correct, verification=how)
        if result is not None and not result.correct:
            yield {**record, "status": "wrong_answer", "error": result.message}
            continue
        if strategy.kernel.scalable == "sme":
            yield {**record, **_sme_record(built, symbol)}
            continue
        try:
            loop = hot_loop(built.code.assembly, symbol)
            record.update(predict(loop, target, strategy.kernel.dtype, strategy.llvm.cpu,
                                  strategy.instruction, built.vector_bits).to_json())
            # One k-step is 2 x mr x nr flops whatever the vectors: cycles per k-step compare across unrolls.
            k_steps = _k_steps(built, record["flops_per_iteration"])
            record["cycles_per_k_step"] = round(record["cycles_per_iteration"] / k_steps, 3) \
                if k_steps and is_microkernel(symbol) else None
            if strategy.kernel.scalable is None:  # the model's own peak kernel is a fixed-width one
                record["model_ceiling"] = model_ceiling(target, strategy.kernel.dtype, built.vector_bits,
                                                        strategy.instruction)
                # Against the model's own prediction for the peak kernel: defined where the table has no figure.
                record["predicted_fraction_of_model_peak"] = round(record["predicted_flops_per_cycle"] / model_peak(
                    target, strategy.kernel.dtype, built.vector_bits, strategy.instruction), 4)
        except McaError as exc:  # the kernel is fine; only the prediction is missing
            record.update(error=one_line(exc))
        yield record
