"""--target: the graph shape for each runtime (targets.py). openvino keeps the chains into and out of the
attention's products as the model wrote them (OpenVINO fuses its attention kernel from them) and every other
chain collapses; ncnn leaves the attention's projections for ncnn's fused attention."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from builders import assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify.inputs import make_feeds
from passes.fc_to_conv.files.model_io import load
from passes.fc_to_conv.graph.shapes import infer
from passes.fc_to_conv.targets.targets import TARGETS

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
C, T, F = 8, 5, 16
TRANSFORMERS = ["bert_tiny", "gpt_tiny", "vit_tiny", "hf_distilbert", "hf_gpt2"]
FIXED = {"bert_tiny": {"input_ids": [1, 128], "attention_mask": [1, 128]}, "gpt_tiny": {"input_ids": [1, 128]},
         "vit_tiny": {"image": [1, 3, 32, 32]}, "hf_distilbert": {"input_ids": [1, 128], "attention_mask": [1, 128]},
         "hf_gpt2": {"input_ids": [1, 128]}}


def block():
    """A pre-LN transformer MLP block on [B, T, C]: h = x + fc2(relu(fc1(LN(x)))); y = LN(h) -> fc3."""
    inits = [init("g1", rand(C, seed=1) + 1), init("w1", rand((C, F), seed=3)), init("b1", rand(F, seed=4)),
             init("w2", rand((F, C), seed=5)), init("g2", rand(C, seed=6) + 1), init("w3", rand((C, 3), seed=8))]
    nodes = [helper.make_node("LayerNormalization", ["x", "g1"], ["n1"], name="ln1", axis=-1),
             helper.make_node("MatMul", ["n1", "w1"], ["m1"], name="fc1"), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["x", "m2"], ["h"], name="residual"),
             helper.make_node("LayerNormalization", ["h", "g2"], ["n2"], name="ln2", axis=-1),
             helper.make_node("MatMul", ["n2", "w3"], ["y"], name="fc3")]
    return make_model(nodes, [vi("x", ["b", "t", C])], [vi("y", ["b", "t", 3])], inits)


@pytest.mark.parametrize("target", sorted(set(TARGETS) - {"ethos-u", "rknn"}))   # they leave these layers (below)
def test_every_target_leaves_layer_norms_and_residuals_alone(target):
    """LayerNormalization and the residual Add stay in [B, T, C] on every target: each FC chain enters the image
    layout and leaves it (Reshape + Transpose each way)."""
    new, report = convert(block(), Options(target=target))
    assert_converted(report, ["fc1", "fc2", "fc3"])
    assert ops(new).count("LayerNormalization") == 2 and "ReduceMean" not in ops(new)
    assert ops(new).count("Transpose") == 4 and ops(new).count("Reshape") == 4, ops(new)


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="target must be one of"):
        convert(block(), Options(target="tensorrt"))
    assert set(TARGETS) == {"onnxruntime", "openvino", "ncnn", "qnn", "rknn", "ethos-u"}


def test_ethos_u_leaves_every_fc_layer_and_keeps_the_rules_own_reasons():
    """Vela runs FullyConnected better than a 1x1 Conv: every layer the rules accept stays, with the target's
    reason; the activation x activation products keep the rule's reason; nothing changes in the graph."""
    m = onnx.load(os.path.join(MODELS, "transformer_block.onnx"))
    new, report = convert(m, Options(target="ethos-u"))
    assert report.verified and not report.converted, report.text()
    reasons = {s.name: s.reason for s in report.skipped}
    assert {n for n, r in reasons.items() if r.startswith("left as a fully connected layer for Ethos-U")} == \
        {"q_mm", "k_mm", "v_mm", "o_mm", "ff1_mm", "ff2_mm"}, reasons
    assert reasons["qk"].startswith("both operands are computed at run time"), reasons
    assert ops(new) == ops(m)


def test_rknn_converts_only_the_reshape_wrapped_layers():
    """RKNN converts FC layers into Convs itself (fc2conv's Conv, bias included, read more: DistilBERT 1.016x) and
    runs a grouped Conv as Split + a Conv per group + Concat; a Reshape-wrapped layer converted ran at 0.175x. So
    the rknn target converts the wrapped layers only, each other layer left with its reason; the graph of a model
    without wrapped layers stays as it was."""
    _, grouped = convert(onnx.load(os.path.join(MODELS, "grouped.onnx")), Options(target="rknn"))
    assert not grouped.converted and grouped.skipped[0].reason.startswith("a grouped layer, left for RKNN"), \
        grouped.text()
    _, default = convert(onnx.load(os.path.join(MODELS, "grouped.onnx")))
    assert_converted(default, ["grouped_fc"])
    m = onnx.load(os.path.join(MODELS, "transformer_block.onnx"))
    new, block_report = convert(m, Options(target="rknn"))
    assert block_report.verified and not block_report.converted, block_report.text()
    assert {s.name for s in block_report.skipped if s.reason.startswith("left for RKNN (--target rknn), which")} \
        == {"q_mm", "k_mm", "v_mm", "o_mm", "ff1_mm", "ff2_mm"}, block_report.text()
    assert ops(new) == ops(m)
    _, wrapped = convert(onnx.load(os.path.join(MODELS, "wrapped_gemms.onnx")), Options(target="rknn"))
    assert_converted(wrapped, ["linear0", "linear1", "linear2"])
    _, gpt2 = convert(onnx.load(os.path.join(MODELS, "hf_gpt2.onnx")), Options(target="rknn"))
    assert gpt2.verified and len(gpt2.converted) == 6, gpt2.text()   # RKNN then computes it rightly (README)


def own_layout_nodes(original, new):
    """The names of the original's own Reshape and Transpose nodes still in `new`."""
    names = {n.name for n in new.graph.node}
    return {n.name for n in original.graph.node if n.op_type in ("Reshape", "Transpose") and n.name in names}


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_openvino_keeps_the_heads_split_as_the_model_wrote_it(name):
    """The default target merges the Q/K/V ways out and the context's way in with the model's own head-split
    Reshapes and Transposes; the openvino target keeps them (those chains reach an attention product), and every
    one that the default target keeps, and converts the same layers. (Neither keeps a wrapped Gemm's own Reshapes
    or a tied weight's Transpose: those are part of the FC layer.)"""
    m, _ = load(os.path.join(MODELS, name + ".onnx"))
    new, report = convert(m, Options(target="openvino"))
    default, default_report = convert(m, Options())
    assert report.verified and not report.reverted, report.text()
    assert [c.name for c in report.converted] == [c.name for c in default_report.converted]
    kept, kept_by_default = own_layout_nodes(m, new), own_layout_nodes(m, default)
    assert kept_by_default < kept, (sorted(kept_by_default), sorted(kept))
    assert len(kept - kept_by_default) >= 2 * 3 * 2, "the Q, K, V chains of two layers, at least"


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_openvino_runs_no_more_layout_layers_than_the_original(name):
    """What the openvino target is for: OpenVINO's CPU plugin, compiled for static shapes, runs as many Reshape,
    Transpose and Reorder layers (PERF_COUNT, status EXECUTED) for the converted model as for the original (2 or
    3 on these models; the default target's output ran 10-11), and the outputs match."""
    ov = pytest.importorskip("openvino")
    m, _ = load(os.path.join(MODELS, name + ".onnx"))
    new, report = convert(m, Options(target="openvino", input_sets=1))
    assert report.verified, report.text()
    feed = make_feeds(m, infer(m), 1, fixed=FIXED[name])[0]

    def layout_layers(model):
        core = ov.Core()
        read = core.read_model(model.SerializeToString(), b"")
        read.reshape(FIXED[name])
        request = core.compile_model(read, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32",
                                                   "INFERENCE_NUM_THREADS": 1}).create_infer_request()
        out = list(request.infer(feed).values())[0]
        return sum(p.status == p.Status.EXECUTED and p.node_type in ("Reshape", "Transpose", "Reorder")
                   for p in request.profiling_info), out

    (before, want), (after, got) = layout_layers(m), layout_layers(new)
    assert after <= before, (before, after)
    assert float(np.linalg.norm(got - want) / np.linalg.norm(want)) < 1e-5


def test_openvino_runs_what_the_openvino_target_writes():
    """OpenVINO reads, compiles and runs the converted transformer and matches the original (downstream.py)."""
    pytest.importorskip("openvino")
    new, report = convert(onnx.load(os.path.join(MODELS, "bert_tiny.onnx")),
                          Options(target="openvino", check_with="openvino", input_sets=1))
    assert report.verified and report.downstream.passed, report.text()


def test_cli_target(tmp_path):
    from test_cli import cli
    r = cli(os.path.join(MODELS, "transformer_block.onnx"), tmp_path / "out.onnx", "--target", "openvino")
    assert r.returncode == 0, r.stderr
    assert "(layout: spatial, target: openvino)" in r.stdout.splitlines()[0]
    assert "PASSED" in r.stdout
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
    kept = sorted(s.name for s in report.skipped if s.reason == TARGETS["ncnn"].keeps[0].reason)
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
    from passes.fc_to_conv.targets.attention import projections
    from passes.fc_to_conv.graph.constants import Constants
    from passes.fc_to_conv.graph.graph_index import GraphIndex
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


def gelu_mlp():
    """fc1 -> erf GELU (x / sqrt2 and + 1 and * 0.5 on single values: a scalar, a [1], a DequantizeLinear's scalar)
    -> fc2 on [B, T, C], as torch exports nn.GELU."""
    q = helper.make_tensor("one_q", onnx.TensorProto.UINT8, [], [10])
    inits = [init("w1", rand((C, F), seed=3)), init("b1", rand(F, seed=4)), init("w2", rand((F, C), seed=5)),
             init("sqrt2", np.array(np.sqrt(2.0), np.float32)), init("half", np.array([0.5], np.float32)),
             init("one_s", np.array(0.1, np.float32)), q]
    n = helper.make_node
    nodes = [n("MatMul", ["x", "w1"], ["m1"], name="fc1"), n("Add", ["m1", "b1"], ["a1"]),
             n("Div", ["a1", "sqrt2"], ["d"]), n("Erf", ["d"], ["e"]),
             n("DequantizeLinear", ["one_q", "one_s"], ["one"]), n("Add", ["e", "one"], ["p"]),
             n("Mul", ["a1", "p"], ["m"]), n("Mul", ["m", "half"], ["g"]), n("Mul", ["half", "g"], ["g2"]),
             n("MatMul", ["g2", "w2"], ["y"], name="fc2")]
    return make_model(nodes, [vi("x", ["b", "t", C])], [vi("y", ["b", "t", C])], inits)


def single_values_read(model):
    """For each Div / Add / Mul on the image, the shapes of its operands that are initializers."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    return {node.op_type + ":" + ",".join(node.input): [shapes[i] for i in node.input if i in shapes]
            for node in model.graph.node if node.op_type in ("Div", "Add", "Mul")}


@pytest.mark.parametrize("target", ["onnxruntime", "qnn"])
def test_single_values_on_the_image_are_rank_4_for_onnxruntime(target):
    """onnxruntime broadcasts a scalar (or a [1]) over an image [B, C, 1, T] one row of T at a time, and a
    [1, 1, 1, 1] operand as one span (2x an Add's time at T = 16; README, Layout): on its target each single value
    of a moved binary op becomes [1, 1, 1, 1], one constant per value, the original scalars gone once unread;
    a value a DequantizeLinear makes stays as it is (its QDQ unit). Other targets keep the scalars. The function
    is the same: the output matches the original on onnxruntime within 1e-5 (fp32, two 8/16-wide layers)."""
    m = gelu_mlp()
    new, report = convert(m, Options(target=target))
    assert_converted(report, ["fc1", "fc2"])
    read = single_values_read(new)
    assert "Erf" in ops(new) and len(read) == 5, read
    constants = sorted(shape for shapes in read.values() for shape in shapes if shape not in ([F, 1, 1], [1, F, 1, 1]))
    if target == "onnxruntime":
        assert constants == [[1, 1, 1, 1]] * 3, read
        assert {t.name for t in new.graph.initializer} & {"sqrt2", "half"} == set()
        assert sum(list(t.dims) == [1, 1, 1, 1] for t in new.graph.initializer) == 2   # half is read twice
    else:
        assert constants == [[], [1], [1]], read
    assert any(nd.op_type == "Add" and "one" in nd.input for nd in new.graph.node)   # the DQ's scalar, as it was
    x = rand((2, T, C), seed=9)
    np.testing.assert_allclose(run(new, {"x": x})[0], run(m, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_a_gelu_onnxruntime_fuses_keeps_its_scalars(tmp_path):
    """onnxruntime fuses Hugging Face GPT-2's tanh GELU into FastGelu only with scalar constants: the default
    target asks it (targets/fusions.py) and leaves those scalars, so the converted model still runs FastGelu
    (with [1, 1, 1, 1] constants it ran 8 ops, 1.12x the model's time)."""
    m = onnx.load(os.path.join(MODELS, "hf_gpt2.onnx"))
    new, report = convert(m)
    assert report.verified and len(report.converted) == 8, report.text()
    assert not any(list(t.dims) == [1, 1, 1, 1] for t in new.graph.initializer)

    def fast_gelus(model):
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return ops(onnx.load(so.optimized_model_filepath)).count("FastGelu")
    assert fast_gelus(new) == fast_gelus(m) == 2
