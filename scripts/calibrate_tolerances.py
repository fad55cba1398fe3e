"""Measure how far a correct FC -> Conv rewrite drifts from the original on onnxruntime CPU, and how far the
typical wrong rewrites land, to choose compare.TOLERANCES (and, with --quantized, compare.QUANTIZED_STEPS).

    python scripts/calibrate_tolerances.py [--quantized]

For each dtype and size: a MatMul+Add layer [M, K] x [K, N] + b on standard-normal data, converted by the pass
(spatial and batch layouts), compared with compare.compare_output. Then three deliberate bugs on the same layer:
the bias dropped, alpha 0.5 ignored (weight scaled by 2), and the weight transposed wrongly (square layers only).
Prints the worst norm_err of correct rewrites and the smallest norm_err of the bugs.

--quantized [--extra FLOAT.onnx ...]: the models of models/quantized/ and onnxruntime-quantized copies of the float
BERT, ViT, CNN and MLP (and of the --extra models): QDQ uint8 per tensor and per channel, QDQ uint16, QOperator;
each converted and run against the original on 20 input sets. The difference of each quantized output is counted
in its quantization steps (max_abs / scale), that of a float output (after LayerNorm, say) in norm_err. The bugs:
every bias dropped from the converted layers, and the first layer's weight scale doubled.
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

import argparse
import glob
import os
import sys
import tempfile

import onnx

from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify.inputs import make_feeds
from passes.fc_to_conv.files.model_io import load
from passes.fc_to_conv.graph.shapes import infer
from passes.fc_to_conv.verify.compare import QUANTIZED_STEPS, TOLERANCES, compare_output, output_steps
from passes.fc_to_conv.verify.verdict import session

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGER = True   # quantized models are verified with their integer kernels (verify._session_options)


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


def _errors(original, converted, feeds, steps, integer):
    """The worst difference over the feeds in one execution: of the quantized outputs in quantization steps, of
    the float outputs in norm_err, and the worst output's error over its tolerance (<= 1 passes: a quantized output
    within QUANTIZED_STEPS steps or the quantized rtol, a float output within the quantized rtol)."""
    a, b = session(original, integer=integer), session(converted, integer=integer)
    rtol = TOLERANCES["quantized"][0]
    worst, worst_float, ratio = 0.0, 0.0, 0.0
    for feed in feeds:
        for name, ref, got in zip([o.name for o in original.graph.output], a.run(None, feed), b.run(None, feed)):
            if ref.dtype.kind != "f":
                continue
            c = compare_output(name, ref, got, 0, 0)
            if name in steps:
                worst = max(worst, c.max_abs / steps[name])
                ratio = max(ratio, min(c.max_abs / steps[name] / QUANTIZED_STEPS, c.norm_err / rtol))
            else:
                worst_float = max(worst_float, c.norm_err)
                ratio = max(ratio, c.norm_err / rtol)
    return worst, worst_float, ratio


def _steps(original, converted, feeds, steps):
    """The errors in the execution that passes best (integer kernels, or float simulation: verify.Reference
    accepts a quantized model that passes in either)."""
    return min((_errors(original, converted, feeds, steps, integer) for integer in (True, False)),
               key=lambda e: e[2])


def _bugs(converted):
    """Two wrong models: every converted layer's bias dropped; the first quantized weight's scale doubled."""
    no_bias = onnx.ModelProto()
    no_bias.CopyFrom(converted)
    dropped = 0
    for n in no_bias.graph.node:
        if n.op_type in ("Conv", "QLinearConv") and len(n.input) in (3, 9):
            del n.input[-1]
            dropped += 1
    scaled = onnx.ModelProto()
    scaled.CopyFrom(converted)
    producer = {o: n for n in scaled.graph.node for o in n.output}
    inits = {t.name: t for t in scaled.graph.initializer}
    conv = next(n for n in scaled.graph.node if n.op_type in ("Conv", "QLinearConv"))
    scale = conv.input[4] if conv.op_type == "QLinearConv" else producer[conv.input[1]].input[1]
    inits[scale].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(inits[scale]) * 2, scale))
    return {"bias dropped": no_bias if dropped else None, "scale x2": scaled}


def quantized_models(tmp, extra=()):
    sys.path.insert(0, HERE)
    import make_quantized_models as mq
    from onnxruntime.quantization import QuantFormat, QuantType
    found = sorted(p for p in glob.glob(os.path.join(HERE, "..", "models", "quantized", "*.onnx"))
                   if "dynamic" not in p)
    mq.OUT = tmp
    mq.MODELS = os.path.join(HERE, "..", "models")
    for src in ["bert_tiny", "vit_tiny", "cnn_classifier", "mlp"] + [os.path.abspath(p)[:-5] for p in extra]:
        for tag, fmt, act, pc in [("u8_pt", QuantFormat.QDQ, QuantType.QUInt8, False),
                                  ("u8_pc", QuantFormat.QDQ, QuantType.QUInt8, True),
                                  ("u16_pc", QuantFormat.QDQ, QuantType.QUInt16, True),
                                  ("qop", QuantFormat.QOperator, QuantType.QUInt8, False)]:
            name = f"{os.path.basename(src)}_{tag}.onnx"
            mq.static(src + ".onnx", name, fmt, act, pc)   # an absolute src is taken as it is
            found.append(os.path.join(tmp, name))
    return found


def calibrate_quantized(extra=()) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        paths = quantized_models(tmp, extra)
        os.chdir(cwd)
        print(f"\n{'model':28} {'correct: steps':>14} {'norm_err':>9} {'ratio':>7} | {'no bias: steps':>14} "
              f"{'norm_err':>9} {'ratio':>7} | {'scale x2: steps':>15} {'norm_err':>9} {'ratio':>7}")
        worst, worst_f, worst_r, best_bug_r = 0.0, 0.0, 0.0, np.inf
        for path in paths:
            model, _ = load(path)
            new, report = convert(model, Options(verify=False))
            steps = output_steps(model)
            feeds = make_feeds(model, infer(model), 20, seed=1)
            correct = _steps(model, new, feeds, steps)
            bugs = [_steps(model, m, feeds, steps) if m is not None else (np.nan, np.nan, np.nan)
                    for m in _bugs(new).values()]
            worst, worst_f, worst_r = max(worst, correct[0]), max(worst_f, correct[1]), max(worst_r, correct[2])
            best_bug_r = min([best_bug_r] + [b[2] for b in bugs if b[2] == b[2]])
            print(f"{os.path.basename(path):28} {correct[0]:14.3g} {correct[1]:9.2e} {correct[2]:7.2g} | "
                  f"{bugs[0][0]:14.3g} {bugs[0][1]:9.2e} {bugs[0][2]:7.2g} | {bugs[1][0]:15.3g} {bugs[1][1]:9.2e} "
                  f"{bugs[1][2]:7.2g}")
        print(f"quantized models (each in the execution that passes best; ratio = worst output's error over its "
              f"tolerance, {QUANTIZED_STEPS} steps or rtol {TOLERANCES['quantized'][0]:g}): correct rewrites at most "
              f"{worst:.3g} steps, norm_err {worst_f:.2e}, ratio {worst_r:.2g}; the subtlest bug at ratio "
              f"{best_bug_r:.3g} (nan: no bias to drop)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantized", action="store_true")
    ap.add_argument("--extra", nargs="*", default=[], help="float models to quantize and measure too")
    ap.add_argument("--float-simulation", action="store_true", help="run quantized models with optimizations off")
    args = ap.parse_args()
    INTEGER = not args.float_simulation
    if args.quantized:
        calibrate_quantized(args.extra)
    else:
        main()
