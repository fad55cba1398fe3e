"""Weights that reach the layer through DequantizeLinear stay quantized: the Conv reads DequantizeLinear of the
re-laid integer weight, with the axis remapped and alpha folded into the scale."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import assert_conv_attributes, assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.rules.qlinear import MatMulIntegerRule
from test_rewrite import assert_close


def qdq_model(k=8, n=6, per_channel=True, gemm=False, trans_b=False, alpha=1.0, zero_point=True, opset=17):
    rng = np.random.default_rng(0)
    shape = (n, k) if trans_b else (k, n)
    q = rng.integers(-100, 100, shape).astype(np.int8)
    n_axis = 0 if trans_b else 1
    scale = (rng.random(n) * 0.02 + 0.01).astype(np.float32) if per_channel else np.float32(0.02)
    inits = [init("Wq", q), init("scale", scale)]
    dq_inputs = ["Wq", "scale"]
    if zero_point:
        inits.append(init("zp", np.zeros(n, np.int8) + 3 if per_channel else np.int8(3)))
        dq_inputs.append("zp")
    nodes = [helper.make_node("DequantizeLinear", dq_inputs, ["W"], axis=n_axis)]
    if gemm:
        inits.append(init("b", rand(n, seed=2)))
        nodes.append(helper.make_node("Gemm", ["X", "W", "b"], ["Y"], name="fc", transB=int(trans_b), alpha=alpha))
    else:
        nodes.append(helper.make_node("MatMul", ["X", "W"], ["Y"], name="fc"))
    return make_model(nodes, [vi("X", ["m", k])], [vi("Y", ["m", n])], inits, opset=opset)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("gemm,trans_b,alpha", [(False, False, 1.0), (True, True, 0.5), (True, False, 2.0)])
@pytest.mark.parametrize("zero_point", [True, False])
def test_quantized_weight_stays_quantized(per_channel, gemm, trans_b, alpha, zero_point):
    m = qdq_model(per_channel=per_channel, gemm=gemm, trans_b=trans_b, alpha=alpha, zero_point=zero_point)
    new, report = convert(m)
    assert report.verified, report.text()
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    dq = next(n for n in new.graph.node if n.output[0] == conv.input[1])
    assert dq.op_type == "DequantizeLinear"
    q = next(t for t in new.graph.initializer if t.name == dq.input[0])
    assert q.data_type == TensorProto.INT8 and list(q.dims) == [6, 8, 1, 1]
    assert next(a.i for a in dq.attribute if a.name == "axis") == 0
    assert "Wq" not in {t.name for t in new.graph.initializer}, "the original integer weight is gone"
    assert ops(new).count("DequantizeLinear") == 1
    x = rand((5, 8))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_block_quantized_weight_stays_on_onnxruntime_and_converts_for_openvino():
    """(tests/test_int4.py has the int4 forms and their numerics.)"""
    m = qdq_model(per_channel=False, opset=21)
    dq = m.graph.node[0]
    m.graph.initializer[1].CopyFrom(init("scale", np.full((2, 6), 0.02, np.float32)))
    del m.graph.initializer[2]
    del dq.input[2]
    dq.attribute[0].i = 0
    dq.attribute.append(helper.make_attribute("block_size", 4))
    _, report = convert(m, Options(verify=False))
    assert report.skipped[0].reason.startswith("block-quantized weight, left for onnxruntime's MatMulNBits kernel")
    new, report = convert(m, Options(target="openvino"))
    assert report.verified and len(report.converted) == 1, report.text()
    dq = next(n for n in new.graph.node if n.op_type == "DequantizeLinear" and "Conv" in
              {r.op_type for r in new.graph.node if n.output[0] in r.input})
    assert {a.name: a.i for a in dq.attribute} == {"axis": 1, "block_size": 4}


def test_a_wrong_quantized_rewrite_is_caught_on_its_own(monkeypatch):
    """The isolated check cuts the DequantizeLinear out with the layer, so a bug in the quantized path shows there."""
    from passes.fc_to_conv.rules import fold
    monkeypatch.setattr(fold, "quantized_conv_axis", lambda axis, trans_b: 1)  # the scale on the wrong axis
    m = qdq_model(k=6, n=6, per_channel=True)
    new, report = convert(m)
    assert report.verified and [r.name for r in report.reverted] == ["fc"]
    assert report.reverted[0].reason.startswith("wrong on its own: output 'Y'")


def test_quantized_activation_is_laid_out_before_it_is_dequantized():
    """x -> QuantizeLinear -> DequantizeLinear -> MatMul(DequantizeLinear(W)): the way in moves onto the integers,
    so that each DequantizeLinear feeds the Conv directly, as QDQ compilers expect. (No QuantizeLinear after the
    layer: onnxruntime runs it as MatMulIntegerToFloat, which --target onnxruntime keeps; openvino converts it.)"""
    m = qdq_model(per_channel=True)
    m.graph.initializer.extend([init("x_scale", np.float32(0.05)), init("x_zp", np.int8(0))])
    m.graph.node.insert(0, helper.make_node("QuantizeLinear", ["X", "x_scale", "x_zp"], ["xq"]))
    m.graph.node.insert(1, helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"]))
    m.graph.node[-1].input[0] = "xd"
    _, kept = convert(m)
    assert not kept.converted and "MatMulIntegerToFloat" in kept.skipped[0].reason
    new, report = convert(m, Options(target="openvino"))
    assert report.verified, report.text()
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    producers = {o: n for n in new.graph.node for o in n.output}
    assert producers[conv.input[0]].op_type == "DequantizeLinear"
    assert producers[conv.input[1]].op_type == "DequantizeLinear"
    # each layout op on the integers is a QDQ node unit with the activation's scale and zero point
    assert ops(new)[:8] == ["QuantizeLinear", "DequantizeLinear", "Reshape", "QuantizeLinear", "DequantizeLinear",
                            "Transpose", "QuantizeLinear", "DequantizeLinear"], ops(new)
    assert all(list(n.input[1:]) == ["x_scale", "x_zp"] for n in new.graph.node[:8] if "Quantize" in n.op_type)
    assert ops(new).count("DequantizeLinear") == 4, "the original activation DequantizeLinear is gone"
    x = rand((5, 8))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_quantize_after_the_conv_moves_before_the_way_out():
    """... -> Conv -> (way out) -> QuantizeLinear: the QuantizeLinear moves to the Conv, the way out runs on the
    integers, and the quantized tensor keeps its name."""
    m = qdq_model(per_channel=True)
    m.graph.initializer.extend([init("y_scale", np.float32(0.1)), init("y_zp", np.int8(0))])
    m.graph.node[-1].output[0] = "y_float"
    m.graph.node.extend([helper.make_node("Reshape", ["y_float", "same"], ["y_model"]),  # the model's own layout op
                         helper.make_node("QuantizeLinear", ["y_model", "y_scale", "y_zp"], ["yq"], name="q_out"),
                         helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zp"], ["Y"])])
    m.graph.initializer.append(init("same", np.array([0, 6], np.int64)))
    m.graph.value_info.append(vi("y_model", ["m", 6]))  # a float value_info that must not survive the move
    new, report = convert(m)
    assert report.verified, report.text()
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    q = next(n for n in new.graph.node if n.op_type == "QuantizeLinear")
    assert q.input[0] == conv.output[0], "the QuantizeLinear reads the Conv directly"
    producers = {o: n for n in new.graph.node for o in n.output}
    last = producers["yq"]   # the way out's last op, a QDQ node unit that ends in the quantized tensor's name
    assert last.op_type == "QuantizeLinear" and list(last.input[1:]) == ["y_scale", "y_zp"], last
    assert producers[last.input[0]].op_type in ("Transpose", "Reshape")
    assert producers[producers[last.input[0]].input[0]].op_type == "DequantizeLinear"
    x = rand((5, 8))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def _head(axis_on_k):
    """[N, 2, 2, 2] -> Flatten -> MatMul(DequantizeLinear(Wq [8, 5], per-channel scale)) -> Y [N, 5]; the scale runs
    along N (axis 1), or along K (axis 0: one scale per input feature)."""
    rng = np.random.default_rng(1)
    k, n = 8, 5
    scale = (rng.random(k if axis_on_k else n) * 0.02 + 0.01).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["X"], ["flat"], axis=1),
             helper.make_node("DequantizeLinear", ["Wq", "scale"], ["W"], axis=0 if axis_on_k else 1),
             helper.make_node("MatMul", ["flat", "W"], ["Y"], name="fc")]
    inits = [init("Wq", rng.integers(-100, 100, (k, n)).astype(np.int8)), init("scale", scale)]
    return make_model(nodes, [vi("X", ["n", 2, 2, 2])], [vi("Y", ["n", n])], inits)


@pytest.mark.parametrize("axis_on_k", [False, True])
def test_quantized_head_is_full_kernel_unless_its_scale_runs_along_k(axis_on_k):
    """A per-output-channel scale follows N into the [N, C, H, W] kernel; one per input feature cannot be split
    over C x H x W, so that head stays a 1x1 Conv on the flattened features."""
    m = _head(axis_on_k)
    new, report = convert(m)
    assert_converted(report, ["fc"])
    assert report.converted[0].layout == ("spatial" if axis_on_k else "full-kernel")
    assert report.converted[0].conv_weight_shape == ([5, 8, 1, 1] if axis_on_k else [5, 2, 2, 2])
    assert_conv_attributes(new)
    x = rand((3, 2, 2, 2))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_shared_quantized_weight_is_folded_once():
    """Two MatMuls read one DequantizeLinear weight: one re-laid integer weight, one DequantizeLinear for both."""
    m = qdq_model(k=6, n=6)
    m.graph.node[-1].output[0] = "h"
    m.graph.node.append(helper.make_node("MatMul", ["h", "W"], ["Y"], name="fc2"))
    new, report = convert(m)
    assert_converted(report, ["fc", "fc2"])
    convs = [n for n in new.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2 and convs[0].input[1] == convs[1].input[1]
    assert ops(new).count("DequantizeLinear") == 1
    assert sum(t.data_type == TensorProto.INT8 and len(t.dims) == 4 for t in new.graph.initializer) == 1
    x = rand((5, 6))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def trt_model(layers=3, width=8, gemm=True):
    """TensorRT-style explicit quantization, as NVIDIA's exporters write it: fp32 weights behind QuantizeLinear ->
    DequantizeLinear (int8 symmetric, per output channel), and a Q -> DQ pair (int8, per tensor) on each FC's
    activation."""
    rng = np.random.default_rng(3)
    nodes, inits, x = [], [], "X"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)   # [N, K] (transB)
        w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
        inits += [init(f"w{i}", w if gemm else w.T.copy()), init(f"w{i}_s", w_scale),
                  init(f"w{i}_z", np.zeros(width, np.int8)), init(f"x{i}_s", np.float32(0.05)),
                  init(f"x{i}_z", np.int8(0)), init(f"b{i}", rng.standard_normal(width).astype(np.float32))]
        axis = 0 if gemm else 1
        nodes += [helper.make_node("QuantizeLinear", [x, f"x{i}_s", f"x{i}_z"], [f"xq{i}"]),
                  helper.make_node("DequantizeLinear", [f"xq{i}", f"x{i}_s", f"x{i}_z"], [f"xd{i}"]),
                  helper.make_node("QuantizeLinear", [f"w{i}", f"w{i}_s", f"w{i}_z"], [f"wq{i}"], axis=axis),
                  helper.make_node("DequantizeLinear", [f"wq{i}", f"w{i}_s", f"w{i}_z"], [f"wd{i}"], axis=axis)]
        if gemm:
            nodes.append(helper.make_node("Gemm", [f"xd{i}", f"wd{i}", f"b{i}"], [f"h{i}"], name=f"fc{i}", transB=1))
        else:
            nodes += [helper.make_node("MatMul", [f"xd{i}", f"wd{i}"], [f"m{i}"], name=f"fc{i}"),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"])]
        nodes.append(helper.make_node("Relu", [f"h{i}"], [f"a{i}"]))
        x = f"a{i}"
    return make_model(nodes, [vi("X", ["n", width])], [vi(x, ["n", width])], inits)


@pytest.mark.parametrize("gemm", [True, False])
def test_tensorrt_style_quantized_float_weights_keep_their_pair(gemm):
    """W = DQ(Q(W fp32)): the Conv reads DQ(Q(W re-laid [N, K, 1, 1])), axis 0, the same scales; each activation
    keeps its Q -> DQ pair in front of the Conv; no layout node between the layers."""
    m = trt_model(gemm=gemm)
    new, report = convert(m)
    assert_converted(report, ["fc0", "fc1", "fc2"])
    producer = {o: n for n in new.graph.node for o in n.output}
    inits = {t.name: t for t in new.graph.initializer}
    for conv in (n for n in new.graph.node if n.op_type == "Conv"):
        dq = producer[conv.input[1]]
        q = producer[dq.input[0]]
        assert (dq.op_type, q.op_type) == ("DequantizeLinear", "QuantizeLinear")
        assert list(inits[q.input[0]].dims) == [8, 8, 1, 1] and inits[q.input[0]].data_type == TensorProto.FLOAT
        assert next(a.i for a in q.attribute if a.name == "axis") == 0
        assert producer[conv.input[0]].op_type == "DequantizeLinear"
    assert ops(new).count("Reshape") + ops(new).count("Transpose") == 4, ops(new)
    assert ops(new).count("Conv") == 3 and "Gemm" not in ops(new) and "MatMul" not in ops(new)
    x = rand((5, 8))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def tensorrt_weight_model(k=64, n=512):
    """TensorRT-style explicit quantization: Q -> DQ on the activation and on the fp32 weight, per channel along N
    (a scale of n floats: 2 KB, so the converted layer's new scale is held by the sink, not inline)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("QuantizeLinear", ["W", "ws", "wz"], ["wq"], axis=1),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="fc")]
    inits = [init("xs", np.float32(0.05)), init("xz", np.int8(0)), init("W", rand((k, n), seed=3)),
             init("ws", (rng.random(n) * 0.02 + 0.01).astype(np.float32)), init("wz", np.zeros(n, np.int8))]
    return make_model(nodes, [vi("x", ["B", "T", k])], [vi("y", ["B", "T", n])], inits)


@pytest.mark.parametrize("external", [False, True], ids=["single-file", "external-data"])
def test_a_tensorrt_style_weight_reads_back_the_scale_the_pass_made(external, tmp_path):
    """The converted layer's per-channel scale is a new constant the sink holds (in memory for a single file, in
    the output's data file otherwise); quantize_before_layout reads it back. It was read from the input's folder:
    exit 2, "<folder>/fc2conv:held: No such file or directory"."""
    import onnx
    from test_cli import cli
    # the output's name differs from the input's, and so does its data file's: the old code looked for the
    # output's data file beside the input
    src, out = tmp_path / "in" / "trt.onnx", tmp_path / "out" / "converted.onnx"
    src.parent.mkdir()
    out.parent.mkdir()
    onnx.save(tensorrt_weight_model(), str(src), save_as_external_data=external, size_threshold=0,
              location="trt.onnx.data")
    r = cli(src, out, "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = __import__("json").loads((tmp_path / "r.json").read_text())
    assert [c["name"] for c in rep["converted"]] == ["fc"] and rep["verification"]["passed"], r.stdout
    new = onnx.load(str(out))
    producer = {o: n for n in new.graph.node for o in n.output}
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    assert producer[conv.input[1]].op_type == "DequantizeLinear"


def qgemm_model(alpha: float, k=8, n=6):
    """x -> QuantizeLinear (uint8) -> QGemm(alpha, transB=1, int32 bias C, quantized output) -> DequantizeLinear:
    onnxruntime's QOperator form of a Gemm (com.microsoft)."""
    rng = np.random.default_rng(2)
    b = rng.integers(-60, 60, (n, k)).astype(np.int8)
    inits = [init("xs", np.float32(0.04)), init("xz", np.uint8(128)), init("B", b), init("bs", np.float32(0.01)),
             init("bz", np.int8(0)), init("C", rng.integers(-200, 200, n).astype(np.int32)),
             init("ys", np.float32(0.02)), init("yz", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("QGemm", ["xq", "xs", "xz", "B", "bs", "bz", "C", "ys", "yz"], ["yq"], name="qgemm",
                              domain="com.microsoft", transB=1, alpha=alpha),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    m = make_model(nodes, [vi("x", ["B", k])], [vi("y", ["B", n])], inits)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_qgemm_alpha_folds_into_the_weight_scale(alpha):
    """QGemm's alpha scales A B' (not C): QLinearConv has no alpha, so it goes into w_scale. Converted, the layer
    verifies and computes what QGemm computes on onnxruntime (within one output step)."""
    m = qgemm_model(alpha)
    new, report = convert(m)
    assert_converted(report, ["qgemm"])
    assert "QLinearConv" in ops(new)
    x = rand((5, 8), seed=4)
    np.testing.assert_allclose(run(new, {"x": x})[0], run(m, {"x": x})[0], atol=0.02 * 1.001)


def matmul_integer_model(w_shape):
    """x -> DynamicQuantizeLinear -> MatMulInteger(int8 W) -> Cast -> Mul(x_scale * w_scale): quantize_dynamic's form."""
    k = w_shape[-2]
    w = np.random.default_rng(5).integers(-60, 60, w_shape).astype(np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "W", "xz"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "ws"], ["s"]), helper.make_node("Mul", ["accf", "s"], ["y"])]
    out = ["G", "B", w_shape[-1]] if len(w_shape) == 3 else ["B", w_shape[-1]]
    x = ["G", "B", k] if len(w_shape) == 3 else ["B", k]
    return make_model(nodes, [vi("x", x)], [vi("y", out)], [init("W", w), init("ws", np.float32(0.01))])


def test_the_convert_dynamic_hint_is_given_only_where_it_holds():
    """A 2-D weight: left as it is, with the hint, and --convert-dynamic converts it. A 3-D weight: ConvInteger
    cannot take it, so the reason says --convert-dynamic would not convert it either, and with the flag it does not
    (the hint used to be given for both)."""
    _, report = convert(matmul_integer_model((8, 6)))
    assert [s.reason for s in report.skipped] == [MatMulIntegerRule.SLOW], report.text()
    _, report = convert(matmul_integer_model((8, 6)), Options(convert_dynamic=True))
    assert_converted(report, ["mmi"])
    _, report = convert(matmul_integer_model((3, 8, 6)))
    assert [s.reason for s in report.skipped] == [
        MatMulIntegerRule.KEPT + "; --convert-dynamic would not convert it either: weight is int8 [3, 8, 6]: "
        "ConvInteger takes a 2-D int8 or uint8 weight"], report.text()
    _, report = convert(matmul_integer_model((3, 8, 6)), Options(convert_dynamic=True))
    assert not report.converted and report.skipped[0].reason.startswith("weight is int8 [3, 8, 6]"), report.text()
