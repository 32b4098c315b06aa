"""`ukl mca`: predicted throughput (llvm-mca) of each strategy's hot loop, next to what the loop looks like.

Every kernel is also run once to prove it correct: natively when the target runs here,
under qemu-aarch64 for Arm targets. A kernel that fails gets no prediction.
"""
from __future__ import annotations

from typing import Iterator

from kernels_mlir.names import KERNEL
from pipelines.asm_analysis import hot_loop
from pipelines.compile import compile_strategy
from pipelines.mca import McaError, model_ceiling, predict
from pipelines.targets import Target
from transforms.strategy import Strategy

from .asm_command import annotated_loop, header
from .emulation import EmulatedFailure
from .evaluate import COMPILE_ERRORS, one_line
from .verify import verify_anywhere

_PREDICTION_KEYS = ("model", "cycles_per_iteration", "bounds", "bottleneck", "uops_per_iteration",
                    "flops_per_iteration", "predicted_flops_per_cycle", "predicted_fraction_of_peak",
                    "model_ceiling")


def predict_strategies(strategies: list[Strategy], target: Target) -> Iterator[dict]:
    for strategy in strategies:
        record = {**header(strategy, target), "status": "ok", "verified": None, "verification": "",
                  "error": "", "theoretical_flops_per_cycle": None,
                  **dict.fromkeys(_PREDICTION_KEYS)}
        try:
            compiled = compile_strategy(strategy, target)
        except COMPILE_ERRORS as exc:
            yield {**record, "status": "compile_error", "error": one_line(exc)}
            continue
        record.update(annotated_loop(compiled))
        record["theoretical_flops_per_cycle"] = target.peak_flops_per_cycle(strategy.kernel.dtype,
                                                                            compiled.vector_bits)
        try:
            check, how = verify_anywhere(compiled.code, strategy.kernel, target.is_aarch64)
        except EmulatedFailure as exc:
            yield {**record, "status": "crash", "verified": False, "verification": "qemu-aarch64",
                   "error": one_line(exc)}
            continue
        record.update(verified=None if check is None else check.correct, verification=how)
        if check is not None and not check.correct:
            yield {**record, "status": "wrong_answer", "error": check.message}
            continue
        try:
            loop = hot_loop(compiled.code.assembly, KERNEL)
            record.update(predict(loop, target, strategy.kernel.dtype, strategy.llvm.cpu).to_json())
            record["model_ceiling"] = model_ceiling(target, strategy.kernel.dtype, compiled.vector_bits)
        except McaError as exc:  # the kernel is fine; only the prediction is missing
            record.update(error=one_line(exc))
        yield record
