"""`ukl mca`: predicted throughput (llvm-mca) of each strategy's hot loop, next to what the loop looks like.

Every kernel is also run once to prove it correct: natively when the target runs here,
under qemu-aarch64 for Arm targets. A kernel that fails gets no prediction.
"""
from __future__ import annotations

from typing import Iterator

from kernels_mlir.names import is_microkernel
from pipelines.asm_analysis import hot_loop
from pipelines.mca import McaError, model_ceiling, model_peak, predict

from runner.cli.asm import annotated_loop, header
from runner.emulation.qemu import EmulatedFailure
from runner.measure.lifecycle import Candidate, build_or_record, check, one_line
from runner.measure.record import Record

_PREDICTION_KEYS = ("model", "cycles_per_iteration", "cycles_per_k_step", "bounds", "bottleneck", "bottleneck_words",
                    "uops_per_iteration", "flops_per_iteration", "predicted_flops_per_cycle",
                    "predicted_fraction_of_peak", "model_ceiling", "predicted_fraction_of_model_peak")


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
        try:
            loop = hot_loop(built.code.assembly, symbol)
            record.update(predict(loop, target, strategy.kernel.dtype, strategy.llvm.cpu,
                                  strategy.instruction).to_json())
            # One k-step is 2 x mr x nr flops whatever the vectors: cycles per k-step compare across unrolls.
            k_steps = record["flops_per_iteration"] / (2 * strategy.kernel.mr * strategy.kernel.nr)
            record["cycles_per_k_step"] = round(record["cycles_per_iteration"] / k_steps, 3) \
                if k_steps and is_microkernel(symbol) else None
            record["model_ceiling"] = model_ceiling(target, strategy.kernel.dtype, built.vector_bits,
                                                    strategy.instruction)
            # Against the model's own prediction for the peak kernel: defined where the table has no figure.
            record["predicted_fraction_of_model_peak"] = round(record["predicted_flops_per_cycle"] / model_peak(
                target, strategy.kernel.dtype, built.vector_bits, strategy.instruction), 4)
        except McaError as exc:  # the kernel is fine; only the prediction is missing
            record.update(error=one_line(exc))
        yield record
