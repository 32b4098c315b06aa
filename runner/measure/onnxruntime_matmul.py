"""ONNX Runtime's MatMul as a small GEMM's baseline, measured as the seed measured it: a chain of
CHAIN one-GEMM nodes run in one session call, divided per node.

The chain's input is the problem's A ([M, K], [B, S, K] for a flat batch, [B, M, K] for a true
batch); node i multiplies by an initializer, [K, N] for odd i and [N, K] for even i (so every
node is the problem's shape and its 2*M*N*K operations), [B, ...] for a true batch. The
initializers are identity matrices (rectangular where K != N): values neither grow nor sink into
denormals over the chain, and MLAS's SGEMM takes the same time whatever the values.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from kernels_mlir.small_gemm import SmallGemmSpec
from runner.measure.baselines import Baseline
from runner.measure.onnxruntime_conv import make_session, version
from runner.measure.timing import seconds_for

#: Nodes per session call (the seed's 256-node chains).
CHAIN = 256
LEVEL = "ORT_ENABLE_EXTENDED"


def _model(spec: SmallGemmSpec, nodes: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper
    elem = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE}[spec.dtype]
    dtype = {"f32": np.float32, "f64": np.float64}[spec.dtype]
    lead = [spec.m] if spec.batch == 1 else [spec.batch, spec.m]
    weights, inits, made = [], [], []
    for i in range(nodes):
        rows, cols = (spec.k, spec.n) if i % 2 == 0 else (spec.n, spec.k)
        w = np.eye(rows, cols, dtype=dtype)
        if spec.layout == "batched" and spec.batch > 1:
            w = np.broadcast_to(w, (spec.batch, rows, cols)).copy()
        key = (rows, cols)
        if key not in made:  # the two initializers are shared by every node of their kind
            made.append(key)
            inits.append(numpy_helper.from_array(w, f"W{len(made) - 1}"))
        weights.append(f"W{made.index(key)}")
    names = ["X"] + [f"Y{i}" for i in range(nodes)]
    node_list = [helper.make_node("MatMul", [names[i], weights[i]], [names[i + 1]]) for i in range(nodes)]
    last = spec.n if nodes % 2 else spec.k
    graph = helper.make_graph(node_list, "chain", [helper.make_tensor_value_info("X", elem, lead + [spec.k])],
                              [helper.make_tensor_value_info(names[-1], elem, lead + [last])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _bound(spec: SmallGemmSpec, a: np.ndarray, nodes: int, threads: int):
    """(session, binding) running the chain on A's values, into a preallocated output."""
    import onnxruntime as ort
    sess = make_session(_model(spec, nodes), LEVEL, threads)
    lead = (spec.m,) if spec.batch == 1 else (spec.batch, spec.m)
    x = np.ascontiguousarray(a).reshape(*lead, spec.k)
    y = np.empty((*lead, spec.n if nodes % 2 else spec.k), dtype=a.dtype)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("X", ort.OrtValue.ortvalue_from_numpy(x))
    binding.bind_ortvalue_output(sess.get_outputs()[0].name, ort.OrtValue.ortvalue_from_numpy(y))
    return sess, binding, (x, y)


def ort_matmul(spec: SmallGemmSpec, a: np.ndarray, threads: int = 1) -> Baseline:
    """run(n): n session calls of CHAIN nodes each (the baseline's `products`)."""
    sess, binding, keep = _bound(spec, a, CHAIN, threads)

    def run(n: int, keep=keep) -> None:
        for _ in range(n):
            sess.run_with_iobinding(binding)
    return Baseline("ORT", f"ONNX Runtime {version()}: MatMul (MLAS), a chain of {CHAIN} nodes per session call, "
                           f"extended optimizations, {threads} thread{'s' if threads > 1 else ''}", run,
                    lambda: call_overhead(spec.dtype, threads), products=CHAIN)


@lru_cache(maxsize=None)
def call_overhead(dtype: str, threads: int) -> float:
    """Seconds per node of a Python loop around a one-node 1x1x1 session, spread over CHAIN nodes: the part
    of a node's time that is the session call's (measured once per process)."""
    tiny = SmallGemmSpec(1, 1, 1, dtype=dtype)
    sess, binding, _ = _bound(tiny, np.ones((1, 1), dtype={"f32": np.float32, "f64": np.float64}[dtype]), 1, threads)

    def loop(n: int) -> None:
        for _ in range(n):
            sess.run_with_iobinding(binding)
    return seconds_for(loop, 2000) / 2000 / CHAIN
