"""onnxruntime's element-wise broadcast of a single value over the image layout: why the default target gives the
single values of the ops it moves onto the image the image's rank (rewrite/writer.py, targets.py).

    python scripts/bench_broadcast.py [--threads 1] [--runs 2000]

One Add or Mul of a constant, on rows [B, T, C] and on the image [B, C, 1, T], the constant a scalar, a [1] or a
[1, 1, 1, 1] (and, for comparison, a per-channel [C] against [C, 1, 1]). Prints the best of 5 rounds of `runs`
calls in microseconds and each form's ratio to the rows; nothing here is timed by the tests.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def session(op: str, x_shape, c_shape, threads: int) -> ort.InferenceSession:
    c = numpy_helper.from_array(np.full(c_shape, 1.5, np.float32), "c")
    g = helper.make_graph([helper.make_node(op, ["x", "c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape)], [c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def best_us(s: ort.InferenceSession, x: np.ndarray, runs: int) -> float:
    feed = {"x": x}
    for _ in range(runs // 10):
        s.run(None, feed)
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(runs):
            s.run(None, feed)
        rounds.append((time.perf_counter() - t) / runs * 1e6)
    return min(rounds)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2000)
    a = ap.parse_args(argv)
    print("| op | B x T x C | rows, scalar | image, scalar | image, [1] | image, [1,1,1,1] | rows, [C] | image, [C,1,1] |")
    print("|---|---|---|---|---|---|---|---|")
    for b, t, c in ((2, 16, 256), (2, 128, 256), (1, 16, 64)):
        rows = np.random.default_rng(0).standard_normal((b, t, c)).astype(np.float32)
        image = np.ascontiguousarray(rows.transpose(0, 2, 1)[:, :, None, :])
        for op in ("Add", "Mul"):
            base = best_us(session(op, [b, t, c], [], a.threads), rows, a.runs)
            forms = [best_us(session(op, [b, c, 1, t], shape, a.threads), image, a.runs) for shape in ([], [1], [1] * 4)]
            per_rows = best_us(session(op, [b, t, c], [c], a.threads), rows, a.runs)
            per_image = best_us(session(op, [b, c, 1, t], [c, 1, 1], a.threads), image, a.runs)
            cells = " | ".join(f"{us:.1f} us ({us / base:.2f}x)" for us in forms)
            print(f"| {op} | {b} x {t} x {c} | {base:.1f} us | {cells} | {per_rows:.1f} us | "
                  f"{per_image:.1f} us ({per_image / per_rows:.2f}x) |", flush=True)


if __name__ == "__main__":
    main()
