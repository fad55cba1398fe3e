"""The default target's sibling Convs (rewrite/siblings.py): layers reading one image become one Conv with their
weights side by side and a Split of its channels, so that onnxruntime folds the way in into its reorder."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from builders import assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert

C, T = 16, 5


def qkv(dtype=np.float32):
    """LayerNorm -> q, k (with a bias), v (without) on [B, T, C], each to an output."""
    inits = [init("g", np.ones(C, dtype)), init("wq", rand((C, C), dtype, seed=2)), init("wk", rand((C, 8), dtype, 3)),
             init("bk", rand(8, dtype, seed=4)), init("wv", rand((C, C), dtype, seed=5))]
    n = helper.make_node
    nodes = [n("LayerNormalization", ["x", "g"], ["h"], axis=-1), n("MatMul", ["h", "wq"], ["q"], name="q_proj"),
             n("MatMul", ["h", "wk"], ["k0"], name="k_proj"), n("Add", ["k0", "bk"], ["k"]),
             n("MatMul", ["h", "wv"], ["v"], name="v_proj")]
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return make_model(nodes, [vi("x", ["b", T, C], elem)],
                      [vi("q", ["b", T, C], elem), vi("k", ["b", T, 8], elem), vi("v", ["b", T, C], elem)], inits)


def optimized(model, tmp_path):
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onnx.load(so.optimized_model_filepath)


def test_layers_reading_one_image_become_one_conv_and_a_split(tmp_path):
    """One Conv of 16 + 8 + 16 channels (k's bias in its place, zeros for q and v) and a Split giving q, k and v;
    each layer's report notes the others; the outputs match the original on onnxruntime within 1e-5 (fp32); in
    the graph onnxruntime optimizes, the way in's Transpose is folded into the one reorder (channels_last)."""
    m = qkv()
    new, report = convert(m)
    assert_converted(report, ["q_proj", "k_proj", "v_proj"])
    convs = [nd for nd in new.graph.node if nd.op_type == "Conv"]
    assert len(convs) == 1 and ops(new).count("Split") == 1, ops(new)
    weights = {t.name: t for t in new.graph.initializer}
    assert list(weights[convs[0].input[1]].dims) == [40, C, 1, 1] and list(weights[convs[0].input[2]].dims) == [40]
    bias = onnx.numpy_helper.to_array(weights[convs[0].input[2]])
    np.testing.assert_array_equal(bias[:C], 0)
    np.testing.assert_array_equal(bias[C + 8:], 0)
    notes = {c.name: c.notes for c in report.converted}
    assert any("one Conv with 'k_proj', 'v_proj'" in x for x in notes["q_proj"]), notes
    x = rand((2, T, C), seed=7)
    for got, want in zip(run(new, {"x": x}), run(m, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ort_graph = optimized(new, tmp_path)
    reorders = [nd for nd in ort_graph.graph.node if nd.op_type == "ReorderInput"]
    made_by = {o: nd.op_type for nd in ort_graph.graph.node for o in nd.output}
    assert [made_by[nd.input[0]] for nd in reorders] == ["Reshape"], ops(ort_graph)   # no Transpose runs before it
    assert [helper.get_attribute_value(a) for nd in reorders for a in nd.attribute if a.name == "channels_last"] == [1]


def test_fp16_siblings_fuse_too():
    m = qkv(np.float16)
    new, report = convert(m)
    assert_converted(report, ["q_proj", "k_proj", "v_proj"])
    assert ops(new).count("Conv") == 1
    x = rand((2, T, C), np.float16, seed=7)
    for got, want in zip(run(new, {"x": x}), run(m, {"x": x})):   # fp16: 16 products summed, values about 4
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("target", ["qnn", "openvino", "ncnn"])
def test_other_targets_keep_a_conv_per_layer(target):
    new, report = convert(qkv(), Options(target=target))
    assert sorted(c.name for c in report.converted) == ["k_proj", "q_proj", "v_proj"], report.text()
    assert ops(new).count("Conv") == 3 and "Split" not in ops(new), ops(new)
    assert not any("one Conv with" in x for c in report.converted for x in c.notes)
