"""Build the quantized test models in models/quantized/ from the float ones in models/ (no torch needed).

    python scripts/make_quantized_models.py

onnxruntime's own quantizer (onnxruntime.quantization, the version installed; 1.32.0 made the committed files)
with random calibration data (seeded), in the forms users hand us:

    mlp_qdq_u8.onnx        QDQ, uint8 activations, int8 weights per tensor          quantize_static
    cnn_qdq_u8_pc.onnx     QDQ, uint8 activations, int8 weights per channel         (CNN with a classifier head)
    vit_qdq_u8_pc.onnx     QDQ, uint8 activations, int8 weights per channel
    bert_qdq_u16.onnx      QDQ, uint16 activations, int8 weights per channel
    mlp_qoperator.onnx     QOperator: QGemm / QLinearMatMul / QLinearAdd
    cnn_qoperator.onnx     QOperator
    mlp_dynamic.onnx       quantize_dynamic: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul -> Add
    mlp_tensorrt.onnx      hand-built as NVIDIA's exporters write explicit quantization: fp32 weights behind
                           QuantizeLinear -> DequantizeLinear (int8 symmetric, per output channel), a Q -> DQ
                           pair (int8, per tensor) on each FC's activation
    bert_modelopt.onnx     TensorRT-style as NVIDIA's ModelOpt writes it (dq_only): int8 weights per output channel
    vit_modelopt.onnx      behind DequantizeLinear, a Q -> DQ pair (int8, per tensor, calibrated) on each FC's
                           activation and no QuantizeLinear after the layer: onnxruntime runs each layer as
                           MatMulIntegerToFloat
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
OUT = os.path.join(MODELS, "quantized")


class _Reader(CalibrationDataReader):
    """Eight seeded random input sets: standard normal floats, token ids below 1000, masks of ones."""

    def __init__(self, path: str):
        model, rng, self.sets = onnx.load(path), np.random.default_rng(0), []
        for _ in range(8):
            feed = {}
            for i in model.graph.input:
                dims = [d.dim_value if d.dim_value > 0 else (16 if "seq" in d.dim_param else 2)
                        for d in i.type.tensor_type.shape.dim]
                if i.type.tensor_type.elem_type == TensorProto.INT64:
                    feed[i.name] = (np.ones(dims, np.int64) if "mask" in i.name
                                    else rng.integers(0, 1000, dims).astype(np.int64))
                else:
                    feed[i.name] = rng.standard_normal(dims).astype(np.float32)
            self.sets.append(feed)
        self.it = iter(self.sets)

    def get_next(self):
        return next(self.it, None)


def static(src: str, name: str, fmt, activations, per_channel: bool) -> None:
    path = os.path.join(MODELS, src)
    quantize_static(path, os.path.join(OUT, name), _Reader(path), quant_format=fmt, per_channel=per_channel,
                    activation_type=activations, weight_type=QuantType.QInt8)
    print(f"wrote models/quantized/{name} ({os.path.getsize(os.path.join(OUT, name))} bytes)")


def tensorrt_mlp(name: str) -> None:
    """models/mlp.onnx's layers with TensorRT-style explicit quantization (weights per output channel)."""
    src = onnx.load(os.path.join(MODELS, "mlp.onnx"))
    weights = {t.name: numpy_helper.to_array(t) for t in src.graph.initializer}
    nodes, inits, x = [], [], "x"
    for i, node in enumerate(n for n in src.graph.node if n.op_type in ("Gemm", "MatMul")):
        w = weights[node.input[1]]
        n_axis = 0 if node.op_type == "Gemm" else 1            # mlp.onnx's Gemms have transB=1
        scale = (np.abs(w).max(axis=1 - n_axis) / 127).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(scale, f"w{i}_scale"),
                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"w{i}_zero"),
                  numpy_helper.from_array(np.float32(0.05), f"x{i}_scale"),
                  numpy_helper.from_array(np.int8(0), f"x{i}_zero")]
        nodes += [helper.make_node("QuantizeLinear", [x, f"x{i}_scale", f"x{i}_zero"], [f"xq{i}"]),
                  helper.make_node("DequantizeLinear", [f"xq{i}", f"x{i}_scale", f"x{i}_zero"], [f"xd{i}"]),
                  helper.make_node("QuantizeLinear", [f"w{i}", f"w{i}_scale", f"w{i}_zero"], [f"wq{i}"], axis=n_axis),
                  helper.make_node("DequantizeLinear", [f"wq{i}", f"w{i}_scale", f"w{i}_zero"], [f"wd{i}"],
                                   axis=n_axis)]
        bias = src.graph.node[[n.name for n in src.graph.node].index(node.name) + 1] \
            if node.op_type == "MatMul" else None
        b = weights[node.input[2] if node.op_type == "Gemm" else bias.input[1]]
        inits.append(numpy_helper.from_array(b, f"b{i}"))
        if node.op_type == "Gemm":
            nodes.append(helper.make_node("Gemm", [f"xd{i}", f"wd{i}", f"b{i}"], [f"h{i}"], name=f"fc{i + 1}",
                                          transB=1))
        else:
            nodes += [helper.make_node("MatMul", [f"xd{i}", f"wd{i}"], [f"m{i}"], name=f"fc{i + 1}"),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"fc{i + 1}_bias")]
        x = f"h{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [x], [f"a{i}"]))
            x = f"a{i}"
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(nodes, "mlp_tensorrt", list(src.graph.input), list(src.graph.output), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fc2conv-scripts")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(OUT, name))
    print(f"wrote models/quantized/{name} ({os.path.getsize(os.path.join(OUT, name))} bytes)")


def modelopt_style(src: str, name: str) -> None:
    """Every MatMul / Gemm of `src` with a constant 2-D weight as ModelOpt's explicit quantization writes it."""
    path = os.path.join(MODELS, src)
    model = onnx.load(path)
    weights = {t.name: t for t in model.graph.initializer}
    layers = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights
              and len(weights[n.input[1]].dims) == 2 and n.input[0] not in weights]
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n.input[0]) for n in layers)
    import onnxruntime as ort
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    peak = {}
    for feed in _Reader(path).sets[:4]:
        for n, v in zip(layers, sess.run([n.input[0] for n in layers], feed)):
            peak[n.input[0]] = max(peak.get(n.input[0], 0.0), float(np.abs(v).max()))
    nodes, added, replaced = [], [], {n.input[1] for n in layers}
    for node in model.graph.node:
        if node in layers:
            x, w_name = node.input[0], node.input[1]
            w = numpy_helper.to_array(weights[w_name])
            n_axis = 0 if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute) else 1
            scale = (np.maximum(np.abs(w).max(axis=1 - n_axis), 1e-8) / 127).astype(np.float32)
            q = np.clip(np.round(w / np.expand_dims(scale, 1 - n_axis)), -127, 127).astype(np.int8)
            tag = node.name or node.output[0]
            added += [numpy_helper.from_array(q, f"{tag}_wq"), numpy_helper.from_array(scale, f"{tag}_ws"),
                      numpy_helper.from_array(np.float32(peak[x] / 127 or 1.0), f"{tag}_xs"),
                      numpy_helper.from_array(np.int8(0), f"{tag}_xz")]
            nodes += [helper.make_node("QuantizeLinear", [x, f"{tag}_xs", f"{tag}_xz"], [f"{tag}_xq"]),
                      helper.make_node("DequantizeLinear", [f"{tag}_xq", f"{tag}_xs", f"{tag}_xz"], [f"{tag}_xd"]),
                      helper.make_node("DequantizeLinear", [f"{tag}_wq", f"{tag}_ws"], [f"{tag}_wd"], axis=n_axis)]
            node.input[0], node.input[1] = f"{tag}_xd", f"{tag}_wd"
        nodes.append(node)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    kept = [t for t in model.graph.initializer if t.name not in replaced or any(t.name in n.input for n in nodes)]
    model.graph.ClearField("initializer")
    model.graph.initializer.extend(kept + added)
    model.producer_name = "fc2conv-scripts"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(OUT, name))
    print(f"wrote models/quantized/{name} ({os.path.getsize(os.path.join(OUT, name))} bytes)")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    u8, u16 = QuantType.QUInt8, QuantType.QUInt16
    static("mlp.onnx", "mlp_qdq_u8.onnx", QuantFormat.QDQ, u8, per_channel=False)
    static("cnn_classifier.onnx", "cnn_qdq_u8_pc.onnx", QuantFormat.QDQ, u8, per_channel=True)
    static("vit_tiny.onnx", "vit_qdq_u8_pc.onnx", QuantFormat.QDQ, u8, per_channel=True)
    static("bert_tiny.onnx", "bert_qdq_u16.onnx", QuantFormat.QDQ, u16, per_channel=True)
    static("mlp.onnx", "mlp_qoperator.onnx", QuantFormat.QOperator, u8, per_channel=False)
    static("cnn_classifier.onnx", "cnn_qoperator.onnx", QuantFormat.QOperator, u8, per_channel=False)
    quantize_dynamic(os.path.join(MODELS, "mlp.onnx"), os.path.join(OUT, "mlp_dynamic.onnx"),
                     weight_type=QuantType.QInt8)
    print("wrote models/quantized/mlp_dynamic.onnx")
    tensorrt_mlp("mlp_tensorrt.onnx")
    modelopt_style("bert_tiny.onnx", "bert_modelopt.onnx")
    modelopt_style("vit_tiny.onnx", "vit_modelopt.onnx")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:  # the quantizer writes scratch files into the working folder
        os.chdir(tmp)
        main()
