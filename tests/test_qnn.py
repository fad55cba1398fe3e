"""--target qnn and Qualcomm's QNN HTP emulator (tests/qnn_htp.py; the `qnn` extra, onnxruntime-qnn).

Without the emulator: the qnn target leaves the layers whose output reaches a Tanh through element-wise ops (HTP
fuses such a chain after a FullyConnected, not after a Conv: GPT-2's tanh GELU took 2.9x the cycles) and converts
every other layer, the erf GELU's included. With it: every shipped QDQ model whose original loads on HTP loads
converted too, for every target, with no FC or Conv left on the CPU and no more CPU nodes than the original; every
shipped float model runs in fp16 with every node on HTP. Cycles are the benchmark's (scripts/bench_npu.py): the
emulator's counts vary between sessions, so they are not asserted here."""
import os

import numpy as np
import onnx
import pytest
from onnx import helper

import qnn_htp
from builders import assert_converted, init, make_model, rand, vi
from passes.fc_to_conv import Options, convert, convert_file


MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
TANH_REASON = "its output reaches a Tanh through element-wise ops (a tanh GELU: x^3 on the way), left for QNN"
needs_qnn = pytest.mark.skipif(not qnn_htp.available(), reason="onnxruntime-qnn is not installed (the qnn extra)")


def gelu_mlp(form: str):
    """x [B, T, 8] -> fc1 -> GELU (tanh form: 0.5 x (1 + tanh(0.79788 (x + 0.044715 x^3))), or erf form) -> fc2."""
    c = lambda name, v: init(name, np.array(v, np.float32))
    inits = [init("w1", rand((8, 16), seed=1)), init("w2", rand((16, 8), seed=2)), c("half", 0.5), c("one", 1.0)]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1")]
    if form == "tanh":
        inits += [c("three", 3.0), c("k", 0.044715), c("s", 0.7978845834732056)]
        nodes += [helper.make_node("Pow", ["h", "three"], ["p"]), helper.make_node("Mul", ["p", "k"], ["pk"]),
                  helper.make_node("Add", ["h", "pk"], ["u"]), helper.make_node("Mul", ["u", "s"], ["us"]),
                  helper.make_node("Tanh", ["us"], ["t"])]
    else:
        inits += [c("sqrt2", 1.4142135)]
        nodes += [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["t"])]
    nodes += [helper.make_node("Add", ["t", "one"], ["t1"]), helper.make_node("Mul", ["h", "t1"], ["g0"]),
              helper.make_node("Mul", ["g0", "half"], ["g"]), helper.make_node("MatMul", ["g", "w2"], ["y"], name="fc2")]
    return make_model(nodes, [vi("x", ["b", "t", 8])], [vi("y", ["b", "t", 8])], inits)


def test_qnn_target_leaves_the_layer_before_a_tanh_gelu():
    _, report = convert(gelu_mlp("tanh"), Options(target="qnn"))
    assert_converted(report, ["fc2"])
    assert [(s.name, s.reason.startswith(TANH_REASON)) for s in report.skipped] == [("fc1", True)], report.text()
    _, default = convert(gelu_mlp("tanh"))
    assert_converted(default, ["fc1", "fc2"])


@pytest.mark.parametrize("tail", ["pooler", "softcap"])
def test_qnn_target_converts_a_layer_whose_tanh_is_no_gelu(tail):
    """Issue 24: the rule kept BERT's and ALBERT's poolers (Gemm -> Tanh) and Gemma2's soft-capped lm_head
    (Div -> Tanh -> Mul) as FC, with a reason written for GPT-2's GELU; only the GELU's chain has the x^3."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1)]
    if tail == "pooler":
        nodes.append(helper.make_node("Tanh", ["h"], ["y"]))
    else:
        nodes += [helper.make_node("Div", ["h", "cap"], ["d"]), helper.make_node("Tanh", ["d"], ["t"]),
                  helper.make_node("Mul", ["t", "cap"], ["y"])]
    m = make_model(nodes, [vi("x", ["b", 8])], [vi("y", ["b", 8])],
                   [init("w", rand((8, 8), seed=5)), init("b", rand((8,), seed=6)), init("cap", np.float32(30.0))])
    _, report = convert(m, Options(target="qnn"))
    assert_converted(report, ["fc"])


def test_qnn_target_converts_the_layer_before_an_erf_gelu():
    """onnxruntime's QNN EP fuses the erf form into one QNN Gelu op after a Conv as well."""
    _, report = convert(gelu_mlp("erf"), Options(target="qnn"))
    assert_converted(report, ["fc1", "fc2"])


def test_qnn_target_on_gpt2_leaves_only_the_layers_before_its_gelus():
    _, report = convert(onnx.load(os.path.join(MODELS, "hf_gpt2.onnx")), Options(target="qnn"))
    assert report.verified and not report.reverted, report.text()
    assert sorted(s.name for s in report.skipped if s.reason.startswith(TANH_REASON)) == \
        ["node_Gemm_312", "node_Gemm_334"], report.text()
    assert len(report.converted) == 6, report.text()


def relu_mlp(tokens, clamp="Relu", opset=17):
    """x [B, tokens, 8] -> fc1 -> Relu (or ReLU6 as Clip) -> fc2."""
    inits = [init("w1", rand((8, 16), seed=1)), init("w2", rand((16, 8), seed=2))]
    if clamp == "Relu":
        act = helper.make_node("Relu", ["h"], ["r"], name="act")
    elif opset >= 11:
        inits += [init("lo", np.array(0, np.float32)), init("hi", np.array(0.25, np.float32))]
        act = helper.make_node("Clip", ["h", "lo", "hi"], ["r"], name="act")
    else:
        act = helper.make_node("Clip", ["h"], ["r"], name="act", min=0.0, max=0.25)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"), act,
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    return make_model(nodes, [vi("x", ["b", tokens, 8])], [vi("y", ["b", tokens, 8])], inits, opset=opset)


@pytest.mark.parametrize("clamp,opset", [("Relu", 17), ("Clip", 17), ("Clip", 9)])
def test_qnn_target_writes_a_relu_on_a_wide_image_as_max_and_min(clamp, opset):
    """HTP runs Max after a Conv for a fraction of a Relu's cost once the image has 16 rows (rewrite/clamps.py):
    a Relu becomes Max(x, 0), a Clip Min(Max(x, lo), hi), with its bounds from its inputs or (opset < 11) its
    attributes; the result verifies (the report, and onnxruntime here against the original on values that cross
    both bounds). With 8 rows, or for another target, the Relu stays."""
    from builders import ops, run
    m = relu_mlp(16, clamp, opset)
    new, report = convert(m, Options(target="qnn"))
    assert report.verified and len(report.converted) == 2, report.text()
    assert clamp not in ops(new) and ops(new).count("Max") == 1
    assert ops(new).count("Min") == (clamp == "Clip")
    x = rand((2, 16, 8), seed=5) * 4
    np.testing.assert_allclose(run(new, {"x": x})[0], run(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
    assert clamp in ops(convert(relu_mlp(8, clamp, opset), Options(target="qnn"))[0])
    assert clamp in ops(convert(m)[0])


def test_qnn_target_writes_a_relu_on_a_dynamic_sequence_as_max_and_keeps_one_on_a_batch_of_rows():
    """A dynamic dim on the image's width counts as many rows when it is a sequence ([B, T, K]: T), not when it
    is the leading dim ([M, K]: M rows, most often a batch of 1)."""
    from builders import ops
    seq = relu_mlp("t")
    assert "Max" in ops(convert(seq, Options(target="qnn"))[0])
    rows = make_model([helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
                       helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])],
                      [vi("x", ["m", 8])], [vi("y", ["m", 8])],
                      [init("w1", rand((8, 16), seed=1)), init("w2", rand((16, 8), seed=2))])
    assert "Relu" in ops(convert(rows, Options(target="qnn"))[0])


QDQ = ["mlp_qdq_u8", "cnn_qdq_u8_pc", "vit_qdq_u8_pc"]   # bert_qdq_u16: the original fails on HTP (MEM_ALLOC)
FLOAT = ["mlp", "cnn_classifier", "resnet_tiny", "vit_tiny", "bert_tiny", "gpt_tiny", "transformer_block",
         "grouped", "hf_gpt2", "audio_block", "wrapped_gemms"]
FC_OPS = {"Conv", "MatMul", "Gemm", "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm"}


def _placement(original, tmp_path, targets, fp16):
    paths = [original]
    for target in targets:
        out = str(tmp_path / f"{target}.onnx")
        report = convert_file(original, out, Options(target=target))
        assert report.verified, report.text()
        paths.append(out)
    return qnn_htp.measure(paths, fp16=fp16, dims={"seq": 16, "t": 16})


@needs_qnn
@pytest.mark.parametrize("name", QDQ)
def test_quantized_models_load_on_qnn_htp_with_every_fc_layer_there(name, tmp_path):
    """Before the layout ops on integers were QDQ node units, the converted MLP and ViT failed to load ('... was
    inserted using the NHWC format as requested by QNNExecutionProvider, but was not selected by that EP')."""
    runs = _placement(os.path.join(MODELS, "quantized", name + ".onnx"), tmp_path, ["onnxruntime", "qnn"], False)
    assert runs[0]["error"] is None, runs[0]
    for r in runs[1:]:
        assert r["error"] is None, r
        assert not FC_OPS & set(r["cpu_nodes"]), r
        assert sum(r["cpu_nodes"].values()) <= sum(runs[0]["cpu_nodes"].values()), (runs[0], r)


@needs_qnn
@pytest.mark.parametrize("name", FLOAT)
def test_float_models_run_in_fp16_on_qnn_htp_with_every_node_there(name, tmp_path):
    runs = _placement(os.path.join(MODELS, name + ".onnx"), tmp_path, ["qnn"], True)
    assert runs[0]["error"] is None and not runs[0]["cpu_nodes"], runs[0]
    assert runs[1]["error"] is None and not runs[1]["cpu_nodes"], runs[1]
    assert runs[1]["cycles"], runs[1]


def rms_norm(constant_first: bool = True):
    """A transformers LLaMA's RMSNorm, x * (mean(x^2) + eps)^-1/2 * weight, as its export writes it (the weight
    the Mul's first operand), then an FC layer: x [1, 16, 64]."""
    d = 64
    nodes = [helper.make_node("Pow", ["x", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1),
             helper.make_node("Add", ["ms", "eps"], ["mse"]), helper.make_node("Sqrt", ["mse"], ["rt"]),
             helper.make_node("Reciprocal", ["rt"], ["inv"]), helper.make_node("Mul", ["x", "inv"], ["normed"]),
             helper.make_node("Mul", ["g", "normed"] if constant_first else ["normed", "g"], ["h"]),
             helper.make_node("MatMul", ["h", "w"], ["y"], name="fc")]
    inits = [init("two", np.array(2, np.float32)), init("axes", np.array([-1], np.int64)),
             init("eps", np.array(1e-6, np.float32)), init("g", rand((d,), seed=3) + 1.5),
             init("w", rand((d, d), seed=4))]
    return make_model(nodes, [vi("x", [1, 16, d])], [vi("y", [1, 16, d])], inits, opset=18)


def test_qnn_target_puts_the_constant_of_a_mul_second():
    out, report = convert(rms_norm(), Options(target="qnn"))
    assert report.verified and report.verification.outputs[0].max_abs == 0, report.text()   # the same function
    mul = next(n for n in out.graph.node if "g" in n.input)
    assert list(mul.input) == ["normed", "g"]
    default, _ = convert(rms_norm())
    assert list(next(n for n in default.graph.node if "g" in n.input).input) == ["g", "normed"]   # untouched


@needs_qnn
def test_an_rms_norm_with_its_weight_first_loads_on_htp_after_the_qnn_target(tmp_path):
    """Issue 25, case 9: HTP fails to finalize the original (QNN_COMMON_ERROR_MEM_ALLOC, fp16 precision); with the
    Mul's operands swapped every node runs on HTP."""
    src, out = tmp_path / "rms.onnx", tmp_path / "rms_qnn.onnx"
    onnx.save(rms_norm(), src)
    assert convert_file(str(src), str(out), Options(target="qnn")).verified
    original, converted = qnn_htp.measure([str(src), str(out)], fp16=True)
    assert original["error"] and "finalize" in original["error"], original
    assert converted["error"] is None and not converted["cpu_nodes"], converted


def gather_head(between: str = ""):
    """The head of torch's dynamo export of torchvision's swin_t: x [1, 7, 7, C] -> Transpose -> ReduceMean ->
    Reshape [-1] -> Gather(indices [1, C, 1, 1]) [-> Relu] -> Reshape [1, C] -> Gemm."""
    c = 64
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMean", ["xt", "axes"], ["m"], keepdims=1),
             helper.make_node("Reshape", ["m", "flat"], ["f"]),
             helper.make_node("Gather", ["f", "idx"], ["g"], axis=0)]
    if between:
        nodes.append(helper.make_node(between, ["g"], ["gb"]))
    nodes += [helper.make_node("Reshape", ["gb" if between else "g", "rows"], ["r"]),
              helper.make_node("Gemm", ["r", "w", "b"], ["y"], name="head", transB=1)]
    inits = [init("axes", np.array([-1, -2], np.int64)), init("flat", np.array([-1], np.int64)),
             init("idx", np.arange(c, dtype=np.int64).reshape(1, c, 1, 1)), init("rows", np.array([1, c], np.int64)),
             init("w", rand((10, c), seed=5)), init("b", rand((10,), seed=6))]
    return make_model(nodes, [vi("x", [1, 7, 7, c])], [vi("y", [1, 10])], inits, opset=18)


@pytest.mark.parametrize("between", ["", "Relu"])
def test_qnn_target_puts_a_reshape_between_a_gather_and_its_conv(between):
    out, report = convert(gather_head(between), Options(target="qnn"))
    assert report.verified and len(report.converted) == 1, report.text()
    by_output = {o: n for n in out.graph.node for o in n.output}
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    path = [by_output[conv.input[0]]]
    while path[-1].op_type != "Gather":
        path.append(by_output[path[-1].input[0]])
    assert [n.op_type for n in path] == ([between] if between else []) + ["Reshape", "Gather"]   # from the Conv up
    shape = next(i for i in out.graph.initializer if i.name == path[-2].input[1])
    assert onnx.numpy_helper.to_array(shape).tolist() == [0, 0, 0, 0]   # copies every dim: the identity
    default, _ = convert(gather_head(between))
    conv = next(n for n in default.graph.node if n.op_type == "Conv")
    reader = {o: n for n in default.graph.node for o in n.output}[conv.input[0]]
    assert reader.op_type == (between or "Gather")   # the other targets: the way in collapsed into nothing


@needs_qnn
def test_a_conv_on_a_gather_loads_on_htp_after_the_qnn_target(tmp_path):
    """Issue 24: the QNN EP aborts the process (an stl_vector assertion) on a Conv that reads a Gather's output
    downstream of a Transpose, as the default target writes swin_t's head; with the qnn target's Reshape between
    them it loads, as the original does. Measured together, the abort of one leaves the others' results."""
    src, plain, out = tmp_path / "head.onnx", tmp_path / "head_default.onnx", tmp_path / "head_qnn.onnx"
    onnx.save(gather_head(), src)
    assert convert_file(str(src), str(plain), Options()).verified
    assert convert_file(str(src), str(out), Options(target="qnn")).verified
    # one child for all three: the abort of one takes only its own result (each is run again alone)
    original, default, converted = qnn_htp.measure([str(src), str(plain), str(out)], fp16=True)
    assert original["error"] is None, original
    assert default["error"] and "ended the process" in default["error"], default
    assert converted["error"] is None and not converted["cpu_nodes"], converted
