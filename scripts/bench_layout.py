"""Which layout should be the default? Time one FC layer before and after conversion on onnxruntime CPU.

    python scripts/bench_layout.py [--rows 2048] [--k 768] [--n 768] [--runs 50]

Builds MatMul+Add [rows, K] x [K, N] (rank 2) and [1, rows, K] (rank 3, a transformer's [B, T, K]), converts
each with both layouts, and prints median latencies with onnxruntime's default graph optimizations and the ratio
converted / original, all measured in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from passes.fc_to_conv import Options, convert


def fc_model(shape, k, n):
    rng = np.random.default_rng(0)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])], "fc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape[:-1] + [n])],
        [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def median_ms(model, x, runs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, {"x": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--k", type=int, default=768)
    ap.add_argument("--n", type=int, default=768)
    ap.add_argument("--runs", type=int, default=50)
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, CPU, default optimizations, median of {a.runs} runs")
    for shape in ([a.rows, a.k], [1, a.rows, a.k]):
        model = fc_model(shape, a.k, a.n)
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        base = median_ms(model, x, a.runs)
        line = f"x {shape}: MatMul+Add {base:.2f} ms"
        for layout in ("spatial", "batch"):
            conv, _ = convert(model, Options(layout=layout, verify=False))
            ms = median_ms(conv, x, a.runs)
            line += f" | {layout} {ms:.2f} ms ({ms / base:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
