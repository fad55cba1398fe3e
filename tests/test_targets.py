"""--target openvino: transformer blocks stay in the image layout (targets.py, normalize.py, region.py).

Numbers are compared with a float64 numpy reference of the original block; the tolerance is verify.py's fp32 one
(norm_err 1e-5), which the channel-axis LayerNorm meets with room: on these blocks it measured about 3e-7.
"""
import os

import numpy as np
import onnx
import pytest
from onnx import helper

from builders import assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.targets import TARGETS

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
C, T, F = 8, 5, 16


def block(opset=17, ln_bias=True, epsilon=1e-5):
    """A pre-LN transformer MLP block on [B, T, C]: h = x + fc2(relu(fc1(LN(x)))); y = LN(h) -> fc3 (made up of
    the ops the openvino target keeps in the image layout: LayerNormalization, the residual Add, FC layers)."""
    inits = [init("g1", rand(C, seed=1) + 1), init("w1", rand((C, F), seed=3)), init("b1", rand(F, seed=4)),
             init("w2", rand((F, C), seed=5)), init("g2", rand(C, seed=6) + 1), init("w3", rand((C, 3), seed=8))]
    ln_in = ["g1", "be1"] if ln_bias else ["g1"]
    if ln_bias:
        inits += [init("be1", rand(C, seed=2)), init("be2", rand(C, seed=7))]
    nodes = [helper.make_node("LayerNormalization", ["x"] + ln_in, ["n1"], name="ln1", axis=-1, epsilon=epsilon),
             helper.make_node("MatMul", ["n1", "w1"], ["m1"], name="fc1"), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["x", "m2"], ["h"], name="residual"),
             helper.make_node("LayerNormalization", ["h", "g2"] + (["be2"] if ln_bias else []), ["n2"], name="ln2",
                              axis=-1, epsilon=epsilon),
             helper.make_node("MatMul", ["n2", "w3"], ["y"], name="fc3")]
    return make_model(nodes, [vi("x", ["b", "t", C])], [vi("y", ["b", "t", 3])], inits, opset=opset)


def reference(model, x):
    """The block in float64 numpy, from the model's own initializers."""
    w = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    eps = next(a.f for a in model.graph.node[0].attribute if a.name == "epsilon")

    def ln(v, g, b):
        mu = v.mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(((v - mu) ** 2).mean(-1, keepdims=True) + eps) * w[g] + w.get(b, 0.0)
    x = x.astype(np.float64)
    h = x + np.maximum(ln(x, "g1", "be1") @ w["w1"] + w["b1"], 0) @ w["w2"]
    return ln(h, "g2", "be2") @ w["w3"]


def norm_err(got, want):
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def run_ort(model, feed):
    """onnxruntime with optimizations off, as the verification runs the original (builders.run). (At the extended
    level onnxruntime 1.32 computes the made-up LayerNorm over axis 1 with a [C] scale differently from its own
    unoptimized kernel and from numpy: norm_err 0.15; the converted model keeps that node as it is.)"""
    return run(model, feed)[0]


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("ln_bias", [True, False])
def test_block_stays_in_the_image_layout(opset, ln_bias):
    m = block(opset, ln_bias)
    new, report = convert(m, Options(target="openvino"))
    assert_converted(report, ["fc1", "fc2", "fc3"])
    # both LayerNorms run on the image as a normalization over axis 1 (an attribute before opset 18, an input
    # from 18); the residual Add reads two images
    assert "LayerNormalization" not in ops(new) and ops(new).count("ReduceMean") == 4
    for n in new.graph.node:
        if n.op_type == "ReduceMean":
            axes = [a.ints for a in n.attribute if a.name == "axes"] if opset < 18 else \
                [onnx.numpy_helper.to_array(next(t for t in new.graph.initializer if t.name == n.input[1]))]
            assert list(axes[0]) == [1]
    # one way in (x, read by ln1 and the residual Add) and one way out (y): 2 + 2 layout nodes, the first ops
    # and the last
    assert ops(new).count("Transpose") == 2 and ops(new).count("Reshape") == 2, ops(new)
    assert ops(new)[:2] == ["Reshape", "Transpose"] and ops(new)[-2:] == ["Transpose", "Reshape"]
    x = rand((2, T, C), seed=11)
    got = run_ort(new, {"x": x})
    assert norm_err(got, reference(m, x)) < 1e-5
    assert norm_err(run_ort(m, {"x": x}), reference(m, x)) < 1e-5   # the reference is the model's function


def test_the_default_target_keeps_layer_norm():
    new, report = convert(block(), Options())
    assert_converted(report, ["fc1", "fc2", "fc3"])
    assert ops(new).count("LayerNormalization") == 2 and "ReduceMean" not in ops(new)


def test_layer_norm_that_is_not_over_the_channels_alone_stays():
    m = block()
    m.graph.node[6].attribute[0].i = 1   # ln2 over (t, c): not the channels alone
    new, report = convert(m, Options(target="openvino"))
    assert_converted(report, ["fc1", "fc2", "fc3"])
    assert ops(new).count("LayerNormalization") == 1 and ops(new).count("ReduceMean") == 2
    assert next(n for n in new.graph.node if n.op_type == "LayerNormalization").name == "ln2"
    x = rand((2, T, C), seed=12)
    assert norm_err(run_ort(new, {"x": x}), run_ort(m, {"x": x})) < 1e-5


def test_fp16_layer_norm_stays():
    """The plain-ops normalization would square fp16 values (overflow past 256); LayerNormalization computes in
    fp32 (stash_type): an fp16 LayerNorm stays as it is."""
    m = block()
    for t in m.graph.initializer:
        t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t).astype(np.float16), t.name))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    new, report = convert(m, Options(target="openvino"))
    assert_converted(report, ["fc1", "fc2", "fc3"])
    assert ops(new).count("LayerNormalization") == 2


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="target must be one of"):
        convert(block(), Options(target="tensorrt"))
    assert set(TARGETS) == {"onnxruntime", "openvino", "ncnn"}


def layout_nodes(model):
    return sum(n.op_type in ("Reshape", "Transpose") for n in model.graph.node)


@pytest.mark.parametrize("name,edges,kept_norms", [
    ("gpt_tiny", 4, 0),    # way in after the embedding, way out before the logits
    ("bert_tiny", 10, 1),  # + the pooler's Gemm in and out; the last layer's residual Add and LayerNorm stay
    ("vit_tiny", 10, 1),   #   outside (its output leaves the model), so two tensors leave there instead of one
])
def test_transformers_keep_their_blocks_in_the_layout(name, edges, kept_norms):
    """On the exported transformers (2 layers each) every LayerNorm but the last runs on the image, and what the
    openvino target adds inside a layer is the head split's ways out (Q, K, V: Reshape + Transpose each) and the
    attention output's way in: 8 layout nodes, none around the LayerNorms, residual Adds, GELU or the MLP. BERT
    and ViT compute their head split from Shape(hidden state): that Shape reads the image (dims 0, 3, 1)."""
    m = onnx.load(os.path.join(MODELS, name + ".onnx"))
    new, report = convert(m, Options(target="openvino"))
    assert report.verified and not report.reverted and len(report.converted) == 13, report.text()
    assert ops(new).count("LayerNormalization") == kept_norms
    old = {n.name for n in m.graph.node}
    added = [n.name for n in new.graph.node if n.op_type in ("Reshape", "Transpose") and n.name not in old]
    assert len(added) == 8 * 2 + edges, added


def test_shape_of_the_hidden_state_reads_the_image():
    """A Shape (with opset 15's start and end) of a tensor held as an image gives the original dims."""
    m = block()
    m.graph.node.append(helper.make_node("Shape", ["h"], ["hs"], name="shape_h", start=1))
    m.graph.output.append(vi("hs", [2], onnx.TensorProto.INT64))
    new, report = convert(m, Options(target="openvino"))
    assert_converted(report, ["fc1", "fc2", "fc3"])
    assert ops(new).count("Transpose") == 2, ops(new)     # h did not leave the layout for its Shape
    x = rand((2, T, C), seed=13)
    got = run(new, {"x": x})
    assert list(got[1]) == [T, C]
    assert norm_err(got[0], reference(m, x)) < 1e-5



@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny", "vit_tiny"])
def test_openvino_runs_what_the_openvino_target_writes(name):
    """OpenVINO reads, compiles and runs the converted transformer and matches the original (downstream.py)."""
    pytest.importorskip("openvino")
    new, report = convert(onnx.load(os.path.join(MODELS, name + ".onnx")),
                          Options(target="openvino", check_with="openvino", input_sets=1))
    assert report.verified and report.downstream.passed, report.text()


def test_cli_target(tmp_path):
    from test_cli import cli
    r = cli(os.path.join(MODELS, "transformer_block.onnx"), tmp_path / "out.onnx", "--target", "openvino")
    assert r.returncode == 0, r.stderr
    assert "(layout: spatial, target: openvino)" in r.stdout.splitlines()[0]
    assert "ReduceMean" in r.stdout and "PASSED" in r.stdout
    bad = cli(os.path.join(MODELS, "transformer_block.onnx"), tmp_path / "bad.onnx", "--target", "tensorrt")
    assert bad.returncode == 2 and "invalid choice: 'tensorrt'" in bad.stderr
    assert not (tmp_path / "bad.onnx").exists()


ATTENTION = {"bert_tiny": "/layers.{}/att/{}/MatMul", "vit_tiny": "/layers.{}/att/{}/MatMul"}


@pytest.mark.parametrize("name", ["bert_tiny", "vit_tiny", "gpt_tiny", "transformer_block"])
def test_ncnn_target_leaves_the_attention_projections(name):
    """--target ncnn: every Q, K, V and output projection stays a MatMul with the reason (pnnx fuses them into
    ncnn's MultiHeadAttention); every other FC layer converts and the model verifies."""
    m = onnx.load(os.path.join(MODELS, name + ".onnx"))
    new, report = convert(m, Options(target="ncnn"))
    assert report.verified and not report.reverted, report.text()
    kept = sorted(s.name for s in report.skipped if s.reason == TARGETS["ncnn"].keep_attention)
    if name in ATTENTION:
        assert kept == sorted(ATTENTION[name].format(i, p) for i in range(2) for p in "qkvo")
    else:
        assert len(kept) == {"gpt_tiny": 8, "transformer_block": 4}[name]
    _, default = convert(m, Options())
    assert len(report.converted) == len(default.converted) - len(kept) > 0
    assert "pnnx fuses the Q, K, V and output layers" in report.text()


def test_attention_projections_are_found_by_structure():
    """attention.projections follows view ops (Reshape with a computed shape, Transpose, a constant scale) from
    the activation x activation products back to Q, K, V and forward to the output layer, and nothing else: an
    FC layer whose output meets the scores through a non-constant Add (a mask) is not a projection."""
    from passes.fc_to_conv.attention import projections
    from passes.fc_to_conv.constants import Constants
    from passes.fc_to_conv.graph_index import GraphIndex
    d = 4
    inits = [init(n, rand((d, d), seed=i)) for i, n in enumerate(["wq", "wk", "wv", "wo", "wm"])]
    inits += [init("scale", np.float32(0.5)), init("perm_shape", np.array([0, -1, d], np.int64))]
    nodes = [helper.make_node("MatMul", ["x", w], [w + "_y"], name=w) for w in ("wq", "wk", "wv", "wm")]
    nodes += [helper.make_node("Mul", ["wq_y", "scale"], ["qs"]),
              helper.make_node("Shape", ["x"], ["xs"]),
              helper.make_node("Reshape", ["wk_y", "xs"], ["kr"]),        # a computed shape: still a view
              helper.make_node("Transpose", ["kr"], ["kt"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["qs", "kt"], ["scores"], name="scores"),
              helper.make_node("Add", ["scores", "mask"], ["masked"]),
              helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "wv_y"], ["ctx"], name="context"),
              helper.make_node("Reshape", ["ctx", "perm_shape"], ["ctx2"]),
              helper.make_node("MatMul", ["ctx2", "wo"], ["y"], name="wo"),
              helper.make_node("Add", ["wm_y", "masked"], ["z"])]             # reads the scores: not a projection
    m = make_model(nodes, [vi("x", [1, T, d]), vi("mask", [1, T, T])], [vi("y", [1, T, d]), vi("z", [1, T, T])],
                   inits)
    index = GraphIndex(m.graph)
    fc = [n for n in m.graph.node if n.name in ("wq", "wk", "wv", "wo", "wm")]
    found = projections(m.graph.node, fc, Constants(index, 8, 17))
    assert sorted(n.name for n in fc if id(n) in found) == ["wk", "wo", "wq", "wv"]
