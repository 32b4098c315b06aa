"""ONNX Runtime's CPU Conv as a baseline: a one-node model on the candidate's own operands.

Two configurations, the ones its users get: the extended optimization level, where the node runs
as built (NCHW through MLAS's convolution: im2col and SGEMM, or its direct depthwise and pointwise
paths), and the full level (the default), which rewrites the node to its blocked NCHWc layout with
reorders of the input and output around it, all inside the timed call. ONNX Runtime's Conv takes
NCHW only, so an NHWC problem is given an NCHW copy of the same values (set up once, not timed):
the record says so. Each call goes through an I/O binding on preallocated buffers, so what is
timed is ONNX Runtime's own call path, not a Python-side allocation.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from runner.measure.baselines import Baseline, threads_word
from runner.measure.timing import seconds_for

if TYPE_CHECKING:
    from kernels_mlir.conv import ConvShape

#: (name, graph optimization level, what runs), as the records name them.
CONFIGURATIONS = (("ORT", "ORT_ENABLE_EXTENDED", "MLAS Conv on NCHW, extended optimizations"),
                  ("ORT-NCHWc", "ORT_ENABLE_ALL", "NCHWc blocked layout with its reorders, full optimizations"))


def _model(shape: "ConvShape", weights: np.ndarray) -> bytes:
    """A one-node Conv model (weights as an initializer), serialized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    sh = shape
    node = helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[sh.r, sh.s], strides=[sh.stride] * 2,
                            pads=[sh.pad] * 4, dilations=[sh.dilation] * 2, group=sh.groups)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                             [sh.n, sh.c, sh.h, sh.w])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [sh.n, sh.k, sh.p, sh.q])],
                              [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def make_session(model: bytes, level: str, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def version() -> str:
    import onnxruntime as ort
    return ort.__version__


def ort_conv(shape: "ConvShape", x_nchw: np.ndarray, w_fchw: np.ndarray, threads: int) -> list[Baseline]:
    """Both configurations on these NCHW input and FCHW weight values (float32)."""
    import onnxruntime as ort
    model = _model(shape, np.ascontiguousarray(w_fchw, dtype=np.float32))
    x = np.ascontiguousarray(x_nchw, dtype=np.float32)
    found = []
    for name, level, what in CONFIGURATIONS:
        session = make_session(model, level, threads)
        y = np.empty((shape.n, shape.k, shape.p, shape.q), dtype=np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input("X", ort.OrtValue.ortvalue_from_numpy(x))
        binding.bind_ortvalue_output("Y", ort.OrtValue.ortvalue_from_numpy(y))

        def run(n: int, session=session, binding=binding) -> None:
            for _ in range(n):
                session.run_with_iobinding(binding)
        layout = "" if shape.layout == "nchw" else ", given an NCHW copy of the NHWC input"
        found.append(Baseline(name, f"ONNX Runtime {ort.__version__}: {what}, {threads_word(threads)}{layout}", run,
                              lambda level=level, threads=threads: call_overhead(level, threads)))
    return found


@lru_cache(maxsize=None)
def call_overhead(level: str, threads: int) -> float:
    """Seconds per call of a Python loop around a 1x1x1x1 Conv session: ONNX Runtime's own per-call cost
    with the loop's (measured once per process)."""
    from kernels_mlir.conv import ConvShape
    import onnxruntime as ort
    tiny = ConvShape(1, 1, 1, 1, 1, 1, 1)
    session = make_session(_model(tiny, np.ones((1, 1, 1, 1), np.float32)), level, threads)
    binding = session.io_binding()
    binding.bind_ortvalue_input("X", ort.OrtValue.ortvalue_from_numpy(np.ones((1, 1, 1, 1), np.float32)))
    binding.bind_ortvalue_output("Y", ort.OrtValue.ortvalue_from_numpy(np.empty((1, 1, 1, 1), np.float32)))

    def loop(n: int) -> None:
        for _ in range(n):
            session.run_with_iobinding(binding)
    return seconds_for(loop, 2000) / 2000
