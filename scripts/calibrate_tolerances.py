"""Measure how far a correct FC -> Conv rewrite drifts from the original on onnxruntime CPU, and how far the
typical wrong rewrites land, to choose verify.TOLERANCES.

    python scripts/calibrate_tolerances.py

For each dtype and size: a MatMul+Add layer [M, K] x [K, N] + b on standard-normal data, converted by the pass
(spatial and batch layouts), compared with verify.compare_output. Then three deliberate bugs on the same layer:
the bias dropped, alpha 0.5 ignored (weight scaled by 2), and the weight transposed wrongly (square layers only).
Prints the worst norm_err of correct rewrites and the smallest norm_err of the bugs.
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify import compare_output, session


def layer(m: int, k: int, n: int, dtype, seed: int, bias_scale: float = 0.1):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
    b = (bias_scale * rng.standard_normal(n)).astype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])], "calib",
        [helper.make_tensor_value_info("x", elem, [m, k])], [helper.make_tensor_value_info("y", elem, [m, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.standard_normal((m, k)).astype(dtype)
    return model, x, w, b


def run(model, x):
    return session(model).run(None, {"x": x})[0]


def main() -> None:
    print(f"{'dtype':8} {'M':>5} {'K':>5} {'N':>5} {'layout':8} {'max_abs':>9} {'norm_err':>9} | "
          f"{'bug: no bias':>12} {'bug: alpha':>10} {'bug: W^T':>9}")
    worst = {}
    best_bug = {}
    for dtype in (np.float32, np.float16):
        for (m, k, n) in [(64, 16, 16), (128, 64, 64), (128, 768, 768), (256, 1024, 4096), (64, 4096, 1024)]:
            model, x, w, b = layer(m, k, n, dtype, seed=k + n)
            ref = run(model, x)
            for layout in ("spatial", "batch"):
                new, _ = convert(model, Options(layout=layout, verify=False))
                c = compare_output("y", ref, run(new, x), 0, 0)
                key = np.dtype(dtype).name
                worst[key] = max(worst.get(key, 0), c.norm_err)
                bugs = []
                for name, wrong_w, wrong_b in [("bias", w, np.zeros_like(b)), ("alpha", (w * 2).astype(dtype), b),
                                               ("wt", w.T.copy() if k == n else None, b)]:
                    if wrong_w is None:
                        bugs.append(float("nan"))
                        continue
                    out = (x.astype(np.float64) @ wrong_w.astype(np.float64) + wrong_b).astype(dtype)
                    e = compare_output("y", ref, out, 0, 0).norm_err
                    bugs.append(e)
                    best_bug[key] = min(best_bug.get(key, np.inf), e)
                print(f"{key:8} {m:5} {k:5} {n:5} {layout:8} {c.max_abs:9.2e} {c.norm_err:9.2e} | "
                      f"{bugs[0]:12.2e} {bugs[1]:10.2e} {bugs[2]:9.2e}")
    for key in worst:
        print(f"{key}: worst norm_err of a correct rewrite {worst[key]:.2e}; smallest norm_err of a bug "
              f"{best_bug[key]:.2e}; ratio {best_bug[key] / max(worst[key], 1e-30):.0f}x")


if __name__ == "__main__":
    main()
