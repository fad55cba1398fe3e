"""The quantized models in models/quantized/ (scripts/make_quantized_models.py: onnxruntime's quantizer, and a
TensorRT-style model): every FC layer with a constant weight converts and verifies, they stay quantized, and after
onnxruntime's own optimizations the converted model runs as many integer kernels as the original and no more
float FC/Conv kernels (SessionOptions.optimized_model_filepath shows what it runs)."""
import collections
import glob
import json
import os

import onnx
import onnxruntime as ort
import pytest

from test_cli import ROOT, cli

MODELS = sorted(glob.glob(os.path.join(ROOT, "models", "quantized", "*.onnx")))
ATTENTION = "both operands are computed at run time"
DYNAMIC = "dynamic quantization (MatMulInteger)"
MODELOPT = "a TensorRT-style quantized layer (Q -> DQ on its inputs, no QuantizeLinear after it), left for onnxruntime"
INTEGER = {"QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
           "MatMulIntegerToFloat", "QAttention"}
FLOAT = {"Conv", "FusedConv", "MatMul", "Gemm", "FusedMatMul", "FusedGemm"}
# onnxruntime has no 16-bit integer kernel: the original's DequantizeLinear(int8 weight) -> MatMul runs as
# MatMulNBits (weights kept as integers), the converted model's as float Conv (faster here: see the README)
WEIGHT_ONLY = {"MatMulNBits"}
LAYOUT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"}
SMALL_INTEGERS = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT16, onnx.TensorProto.UINT16}


def kernels(path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.optimized_model_filepath = path + ".optimized.onnx"
    ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)
    os.remove(so.optimized_model_filepath)
    return ops


def test_the_quantized_set_is_shipped():
    assert {os.path.basename(m) for m in MODELS} == {
        "mlp_qdq_u8.onnx", "cnn_qdq_u8_pc.onnx", "vit_qdq_u8_pc.onnx", "bert_qdq_u16.onnx", "mlp_qoperator.onnx",
        "cnn_qoperator.onnx", "mlp_dynamic.onnx", "mlp_tensorrt.onnx", "bert_modelopt.onnx", "vit_modelopt.onnx"}


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_quantized_model_converts_and_stays_integer(path, tmp_path):
    out = tmp_path / "out.onnx"
    r = cli(path, out, "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["verification"]["passed"] and not rep["reverted"], r.stdout
    dynamic, modelopt = "dynamic" in path, "modelopt" in path   # (modelopt: left for MatMulIntegerToFloat)
    assert all(s["reason"].startswith(DYNAMIC if dynamic else ATTENTION) or modelopt and
               s["reason"].startswith(MODELOPT) for s in rep["skipped"]), rep["skipped"]
    assert len(rep["converted"]) == (0 if dynamic or modelopt else 13 if "bert" in path or "vit" in path else 3)
    for o in rep["verification"]["outputs"]:   # within the calibrated quantization steps, when quantized
        assert o["norm_err"] <= 1e-5 or o["step"] and o["max_abs"] <= 2 * o["step"] * (1 + 1e-6), o
    before, after = kernels(path), kernels(str(out))
    integer = lambda ops: sum(ops[k] for k in INTEGER)
    floats = lambda ops: sum(ops[k] for k in FLOAT)
    assert integer(after) >= integer(before), (before, after)
    if "u16" in path:
        assert floats(after) <= floats(before) + sum(before[k] for k in WEIGHT_ONLY), (before, after)
    else:
        assert floats(after) <= floats(before), (before, after)
    if not dynamic and "tensorrt" not in path:
        assert integer(after) > 0 or "u16" in path
    assert after["Add"] <= before["Add"], "a bias that left the quantized Conv would be a float Add"
    if "qdq" in path:   # what QDQ compilers read as one quantized Conv: DQ(x) -> Conv(DQ(w), DQ(int32 bias))
        new = onnx.load(str(out))
        producer = {o: n for n in new.graph.node for o in n.output}
        ints = {t.name for t in new.graph.initializer if t.data_type == onnx.TensorProto.INT32}
        for conv in (n for n in new.graph.node if n.op_type == "Conv"):
            assert all(producer[i].op_type == "DequantizeLinear" for i in conv.input), conv.name
            assert len(conv.input) < 3 or producer[conv.input[2]].input[0] in ints, conv.name


@pytest.mark.parametrize("name", ["bert_modelopt.onnx", "vit_modelopt.onnx"])
def test_modelopt_style_layers_convert_for_other_targets_and_stay_int8(name, tmp_path):
    """Only onnxruntime has the MatMulIntegerToFloat kernel the default target keeps them for (issue 24)."""
    out = tmp_path / "out.onnx"
    r = cli(os.path.join(ROOT, "models", "quantized", name), out, "--target", "openvino", "--report", tmp_path / "r.json")
    rep = json.loads((tmp_path / "r.json").read_text())
    assert r.returncode == 0 and rep["verification"]["passed"] and len(rep["converted"]) == 13, r.stdout
    new = onnx.load(str(out))
    producer = {o: n for n in new.graph.node for o in n.output}
    inits = {t.name: t for t in new.graph.initializer}
    convs = [n for n in new.graph.node if n.op_type == "Conv" and n.input[1] in producer]   # (not ViT's patches)
    assert len(convs) == 13
    for conv in convs:
        x, w = producer.get(conv.input[0]), producer[conv.input[1]]
        assert x is not None and x.op_type == w.op_type == "DequantizeLinear", conv.name
        assert inits[w.input[0]].data_type == onnx.TensorProto.INT8, conv.name


def test_the_tensorrt_model_keeps_its_explicit_quantization(tmp_path):
    """TensorRT needs the Q -> DQ pairs to find its int8 layers: one pair per weight and per activation."""
    out = tmp_path / "out.onnx"
    assert cli(os.path.join(ROOT, "models", "quantized", "mlp_tensorrt.onnx"), out).returncode == 0
    new = onnx.load(str(out))
    ops = collections.Counter(n.op_type for n in new.graph.node)
    # one pair per weight and activation, and one per layout op on the integers (the way in: a QDQ node unit)
    assert ops["Conv"] == 3 and ops["QuantizeLinear"] == 8 and ops["DequantizeLinear"] == 8, ops
    assert ops["Reshape"] + ops["Transpose"] == 4, ops
    assert not integer_layout_ops(new)


def integer_layout_ops(model):
    """The layout ops that read 8- or 16-bit integers (types from onnx's shape inference)."""
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    return [n.name for n in g.node if n.op_type in LAYOUT and types.get(n.input[0]) in SMALL_INTEGERS]


@pytest.mark.parametrize("name", ["mlp_qdq_u8.onnx", "cnn_qdq_u8_pc.onnx", "vit_qdq_u8_pc.onnx", "bert_qdq_u16.onnx",
                                  "mlp_tensorrt.onnx"])
def test_layout_ops_on_quantized_activations_are_qdq_node_units(name, tmp_path):
    """A QDQ compiler (the QNN HTP EP) takes an op only as DequantizeLinear -> op -> QuantizeLinear: no layout op of
    the converted model reads integers (none of the originals does), and each one the pass wrapped dequantizes and
    quantizes again with the same scale and zero point."""
    out = tmp_path / "out.onnx"
    assert cli(os.path.join(ROOT, "models", "quantized", name), out).returncode == 0
    new = onnx.load(str(out))
    assert not integer_layout_ops(onnx.load(os.path.join(ROOT, "models", "quantized", name)))
    assert not integer_layout_ops(new)
    producer = {o: n for n in new.graph.node for o in n.output}
    readers = collections.defaultdict(list)
    for n in new.graph.node:
        for i in n.input:
            readers[i].append(n)
    units = 0
    for n in (n for n in new.graph.node if n.op_type in LAYOUT):
        dq, after = producer.get(n.input[0]), readers[n.output[0]]
        if dq is not None and dq.op_type == "DequantizeLinear" and len(after) == 1 \
                and after[0].op_type == "QuantizeLinear":
            assert list(after[0].input[1:]) == list(dq.input[1:]), n.name
            units += 1
    assert units >= {"cnn_qdq_u8_pc.onnx": 1, "mlp_tensorrt.onnx": 2}.get(name, 4), units


@pytest.mark.parametrize("name", ["mlp_qdq_u8.onnx", "mlp_qoperator.onnx"])
def test_quantized_chains_stay_in_the_image_layout(name, tmp_path):
    """Between quantized layers the Q -> DQ pair (QDQ) or the QLinearAdd (QOperator) runs on the images: one way in
    and one way out for the whole MLP, as for the float MLP."""
    out = tmp_path / "out.onnx"
    assert cli(os.path.join(ROOT, "models", "quantized", name), out).returncode == 0
    ops = collections.Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["Reshape"] + ops["Transpose"] == 4, ops


def test_a_quantized_classifier_head_is_a_full_kernel_conv(tmp_path):
    """Flatten -> Q -> DQ -> Gemm: the per-tensor pair commutes with the Flatten, so the head's Conv reads
    DQ(Q(map)) with a 4 x 4 kernel and the Flatten goes, as in the float CNN."""
    out = tmp_path / "out.onnx"
    r = cli(os.path.join(ROOT, "models", "quantized", "cnn_qdq_u8_pc.onnx"), out, "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    head = json.loads((tmp_path / "r.json").read_text())["converted"][0]
    assert head["layout"] == "full-kernel" and head["conv_weight_shape"][2:] == [4, 4]
    ops = collections.Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert "Flatten" not in ops and ops["Reshape"] == 1 and "Transpose" not in ops, ops
