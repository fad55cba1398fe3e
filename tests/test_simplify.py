"""Chains of Reshape and Transpose that the rewrite created or extended collapse to at most Reshape -> Transpose ->
Reshape; the model's own chains stay as they are."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import init, make_model, ops, rand, vi
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.rewrite.emit import Emitter
from passes.fc_to_conv.graph.graph_index import Names
from passes.fc_to_conv.graph.shapes import infer
from passes.fc_to_conv.rewrite.simplify import find_chains, simplify
from test_rewrite import convert_and_compare


def heads_model(perm, allowzero=0):
    """k = x @ Wk + b, split into 4 heads of 16 and transposed with `perm`, as attention does."""
    nodes = [helper.make_node("MatMul", ["X", "W"], ["m"], name="proj"),
             helper.make_node("Add", ["m", "b"], ["k"], name="proj_bias"),
             helper.make_node("Reshape", ["k", "heads"], ["k4"], name="split", allowzero=allowzero),
             helper.make_node("Transpose", ["k4"], ["Y"], name="heads_t", perm=perm)]
    out = [["b", "t", 4, 16][p] for p in perm]
    return make_model(nodes, [vi("X", ["b", "t", 64])], [vi("Y", out)],
                      [init("W", rand((64, 64))), init("b", rand(64, seed=2)),
                       init("heads", np.array([0, 0, 4, 16], np.int64))])


@pytest.mark.parametrize("perm,expected", [
    ([0, 2, 3, 1], ["Reshape", "Transpose", "Conv", "Reshape"]),              # keys: [B,H,dh,T] is a reshape
    ([0, 2, 1, 3], ["Reshape", "Transpose", "Conv", "Reshape", "Transpose"]),  # queries, values: one Transpose
])
def test_way_out_merges_with_the_heads_split(perm, expected):
    m = heads_model(perm)
    new, report = convert_and_compare(m, [{"X": rand((2, 5, 64))}, {"X": rand((1, 7, 64), seed=3)}])
    assert ops(new) == expected, ops(new)


def test_reshape_with_allowzero_from_dynamo_exports():
    m = heads_model([0, 2, 3, 1], allowzero=1)
    m.graph.initializer[-1].CopyFrom(init("heads", np.array([1, 5, 4, 16], np.int64)))
    m.graph.input[0].CopyFrom(vi("X", [1, 5, 64]))
    m.graph.output[0].CopyFrom(vi("Y", [1, 4, 16, 5]))
    new, _ = convert_and_compare(m, [{"X": rand((1, 5, 64))}])
    assert ops(new).count("Reshape") + ops(new).count("Transpose") == 3


def test_merged_heads_into_the_next_projection():
    """[B,H,T,dh] -> Transpose(0,2,1,3) -> Reshape [B,T,C] -> (way in) becomes one Transpose and one Reshape."""
    nodes = [helper.make_node("Transpose", ["A"], ["a_t"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["a_t", "merge"], ["merged"]),
             helper.make_node("MatMul", ["merged", "W"], ["Y"], name="o_proj")]
    m = make_model(nodes, [vi("A", ["b", 4, "t", 16])], [vi("Y", ["b", "t", 64])],
                   [init("W", rand((64, 64))), init("merge", np.array([0, 0, 64], np.int64))])
    new, _ = convert_and_compare(m, [{"A": rand((2, 4, 5, 16))}])
    assert ops(new) == ["Transpose", "Reshape", "Conv", "Transpose", "Reshape"]


def test_chains_the_pass_did_not_touch_stay():
    nodes = [helper.make_node("Transpose", ["X"], ["a"], perm=[1, 0], name="t1"),
             helper.make_node("Transpose", ["a"], ["Y"], perm=[1, 0], name="t2")]
    m = make_model(nodes, [vi("X", [3, 4])], [vi("Y", [3, 4])])
    before = m.SerializeToString()
    g = onnx.ModelProto.FromString(before)
    assert find_chains(g.graph, added={"something_else"}) == []
    chains = find_chains(g.graph, added={"t2"})
    assert [[n.name for n in c] for c in chains] == [["t1", "t2"]]
    simplify(g.graph, chains, shapes=infer(g), em=Emitter(Names(g.graph), 17, g.graph))
    assert ops(g) == ["Identity"], "a pair that undoes itself cancels once the pass owns part of it"


def test_unknown_dims_leave_the_chain_alone():
    """The heads split takes its shape from a graph input: inference cannot say its dims, the chain stays."""
    m = heads_model([0, 2, 3, 1])
    del m.graph.initializer[-1]
    m.graph.input.append(vi("heads", [4], onnx.TensorProto.INT64))
    new, report = convert(m, Options(inputs={"heads": np.array([0, 0, 4, 16], np.int64)}))
    assert report.verified, report.text()
    assert ops(new) == ["Reshape", "Transpose", "Conv", "Transpose", "Reshape", "Reshape", "Transpose"]


def test_shipped_transformers_lose_the_layout_round_trips():
    """BERT: 18 Reshape and 18 Transpose added before collapsing; now 10 and 8, and the model still verifies."""
    from passes.fc_to_conv.files.model_io import load
    from test_cli import ROOT
    import os
    model, _ = load(os.path.join(ROOT, "models", "bert_tiny.onnx"))
    new, report = convert(model)
    assert report.verified
    added = {op: report.ops_after[op] - report.ops_before[op] for op in ("Reshape", "Transpose")}
    assert added == {"Reshape": 10, "Transpose": 8}


def fused_qkv_model(batch=1, t=6, c=16, heads=2):
    """GPT-2's attention as the dynamo exporter writes it: one QKV layer, Split on the channels, each part split
    into heads (K transposed for K^T), scores, softmax, context, heads merged, output layer; static shapes."""
    d = c // heads
    inits = [init("wqkv", rand((c, 3 * c))), init("bqkv", rand(3 * c, seed=2)), init("wo", rand((c, c), seed=3)),
             init("sizes", np.array([c, c, c], np.int64)), init("hd", np.array([batch, t, heads, d], np.int64)),
             init("merged", np.array([batch, t, c], np.int64))]
    nodes = [helper.make_node("MatMul", ["x", "wqkv"], ["m"], name="qkv"),
             helper.make_node("Add", ["m", "bqkv"], ["qkv_out"], name="qkv_bias"),
             helper.make_node("Split", ["qkv_out", "sizes"], ["q", "k", "v"], name="split_qkv", axis=2)]
    for name, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [helper.make_node("Reshape", [name, "hd"], [name + "4"], name=name + "_heads"),
                  helper.make_node("Transpose", [name + "4"], [name + "h"], name=name + "_t", perm=perm)]
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["scores"], name="scores"),
              helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["ctx"], name="context"),
              helper.make_node("Transpose", ["ctx"], ["ctx_t"], name="merge_t", perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ctx_t", "merged"], ["ctx_m"], name="merge"),
              helper.make_node("MatMul", ["ctx_m", "wo"], ["y"], name="out")]
    return make_model(nodes, [vi("x", [batch, t, c])], [vi("y", [batch, t, c])], inits)


def layout(model):
    return sum(n.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze") for n in model.graph.node)


def test_a_fused_qkv_layer_splits_on_the_image():
    """The Split of a fused QKV layer runs on its image (axis 1), and each part's way out merges with its heads
    split: Q and V one Reshape and one Transpose each, as the model had, K one Reshape ([B, C, 1, T] is already
    K^T by heads); with the static batch of 1 kept as a leading axis, no Squeeze or Unsqueeze. The only layout
    nodes added are the QKV layer's way in (2) and, after the merge, the output layer's way out (2)."""
    m = fused_qkv_model()
    new, report = convert_and_compare(m, [{"x": rand((1, 6, 16), seed=4)}])
    assert sorted(c.name for c in report.converted) == ["out", "qkv"]
    split = next(n for n in new.graph.node if n.op_type == "Split")
    assert next(a.i for a in split.attribute if a.name == "axis") == 1
    assert "Squeeze" not in ops(new) and "Unsqueeze" not in ops(new), ops(new)
    assert layout(new) - layout(m) == 3, ops(new)   # + way in, + way out, - K's Transpose


def test_a_split_read_by_anything_else_stays_in_the_original_layout():
    m = fused_qkv_model()
    m.graph.node.append(helper.make_node("Relu", ["v"], ["v_relu"]))
    m.graph.output.append(vi("v_relu", [1, 6, 16]))
    new, _ = convert_and_compare(m, [{"x": rand((1, 6, 16), seed=5)}])
    split = next(n for n in new.graph.node if n.op_type == "Split")
    assert next(a.i for a in split.attribute if a.name == "axis") == 2


def test_openvino_target_keeps_the_chains_at_the_attention_products():
    """--target openvino collapses no chain that ends in an attention product or starts at one: OpenVINO fuses
    MatMul -> Softmax -> MatMul with the model's own Transposes into one kernel. The QKV layer's output leaves
    the image before the model's Split, as the model wrote it."""
    m = fused_qkv_model()
    new, report = convert(m, Options(target="openvino", input_sets=1))
    assert report.verified and sorted(c.name for c in report.converted) == ["out", "qkv"], report.text()
    names = {n.name for n in new.graph.node}
    assert {"q_heads", "q_t", "k_heads", "k_t", "v_heads", "v_t", "merge_t"} <= names
    split = next(n for n in new.graph.node if n.op_type == "Split")
    assert next(a.i for a in split.attribute if a.name == "axis") == 2


def test_a_split_of_the_rows_of_a_weight_first_layer_stays():
    """W @ x on [B, K, T] (channels first): its output's last axis is the rows, not the channels, so a Split there
    is not a channel split, even where the sizes would fit the channels (6 channels, 6 rows here)."""
    nodes = [helper.make_node("MatMul", ["w", "x"], ["y"], name="fc"),
             helper.make_node("Split", ["y", "sizes"], ["a", "b"], axis=2),
             helper.make_node("Transpose", ["a"], ["ya"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["b", "flat"], ["yb"])]
    m = make_model(nodes, [vi("x", [1, 8, 6])], [vi("ya", [1, 2, 6]), vi("yb", [1, 24])],
                   [init("w", rand((6, 8))), init("sizes", np.array([2, 4], np.int64)),
                    init("flat", np.array([1, -1], np.int64))])
    new, report = convert_and_compare(m, [{"x": rand((1, 8, 6), seed=6)}])
    assert [c.name for c in report.converted] == ["fc"]
    split = next(n for n in new.graph.node if n.op_type == "Split")
    assert next(a.i for a in split.attribute if a.name == "axis") == 2
