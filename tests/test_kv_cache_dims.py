"""KV-cache decoders whose dim names do not say how they relate (issue 25, case 3): onnxruntime-genai names the mask
`total_sequence_length` beside `past_sequence_length` and `sequence_length`, a torch export may name it anything.
The verification finds from the graph that the mask is past + new tokens (the Concat of the past and the new keys),
and checks one prefill after a past and one decode step (1 new token). Before, every input set failed on the
original ("fails on every input tried").

The decoder here: one attention head of width D over tokens x [B, S, D] with a past [B, 1, P, D]; the scores
[B, 1, S, P + S] plus a mask made from attention_mask [B, T] with T = P + S, which must agree or the Add fails."""
import numpy as np
import pytest
from onnx import TensorProto as T, helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.verify.dim_relations import relations
from passes.fc_to_conv.graph.shapes import infer

D = 8


def decoder(mask_dim: str, past: str = "past_len", new: str = "seq", batch: str = "batch"):
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q2"], name="q_proj"),
             helper.make_node("MatMul", ["x", "wk"], ["k2"], name="k_proj"),
             helper.make_node("MatMul", ["x", "wv"], ["v2"], name="v_proj"),
             helper.make_node("Unsqueeze", ["q2", "one"], ["q"]), helper.make_node("Unsqueeze", ["k2", "one"], ["k"]),
             helper.make_node("Unsqueeze", ["v2", "one"], ["v"]),
             helper.make_node("Concat", ["past_key", "k"], ["present_key"], axis=2),
             helper.make_node("Concat", ["past_value", "v"], ["present_value"], axis=2),
             helper.make_node("Transpose", ["present_key"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Cast", ["attention_mask"], ["mf"], to=T.FLOAT),
             helper.make_node("Sub", ["onef", "mf"], ["inv"]), helper.make_node("Mul", ["inv", "big"], ["neg"]),
             helper.make_node("Unsqueeze", ["neg", "axes12"], ["bias"]),
             helper.make_node("Add", ["scores", "bias"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "present_value"], ["ctx4"]),
             helper.make_node("Squeeze", ["ctx4", "one"], ["ctx"]),
             helper.make_node("MatMul", ["ctx", "wo"], ["y"], name="o_proj")]
    cache = [batch, 1, past, D]
    inputs = [vi("x", [batch, new, D]), vi("attention_mask", [batch, mask_dim], T.INT64), vi("past_key", cache),
              vi("past_value", cache)]
    outputs = [vi("y", [batch, new, D]), vi("present_key", None), vi("present_value", None)]
    inits = [init(n, rand((D, D), seed=i)) for i, n in enumerate(("wq", "wk", "wv", "wo"))] + [
        init("one", np.array([1], np.int64)), init("axes12", np.array([1, 2], np.int64)),
        init("onef", np.array(1, np.float32)), init("big", np.array(-1e4, np.float32))]
    return make_model(nodes, inputs, outputs, inits)


@pytest.mark.parametrize("names", [dict(mask_dim="total_sequence_length", past="past_sequence_length",
                                        new="sequence_length"),          # onnxruntime-genai's names
                                   dict(mask_dim="s2", past="s1", new="s0")])   # a torch export's
def test_a_decoder_whose_mask_is_past_plus_new_verifies(names):
    _, report = convert(decoder(**names))
    assert report.verified and len(report.converted) == 4, report.text()
    assert not report.verification.fallback
    shapes = report.verification.inputs
    assert "x [2, 3, 8] / [3, 1, 8]" in shapes, shapes         # a prefill after a past, then one decode step
    assert "attention_mask [2, 7] / [3, 6]" in shapes, shapes  # past + new: 4 + 3, then 5 + 1


def test_the_relation_is_found_in_the_graph():
    m = decoder("mask_len")
    found, new = relations(m, list(m.graph.input), infer(m))
    assert found == {"mask_len": "past_len + seq"} and new == "seq"


def test_group_query_attention_takes_its_head_size_heads_and_batch_1():
    """com.microsoft GroupQueryAttention's past key: [batch, kv_num_heads, past, head_size], batch 1."""
    gqa = helper.make_node("GroupQueryAttention", ["q", "k", "v", "past_key", "past_value", "seqlens", "total"],
                           ["o", "pk", "pv"], domain="com.microsoft", num_heads=4, kv_num_heads=2)
    m = make_model([gqa], [vi("q", ["b", "s", 32]), vi("k", ["b", "s", 16]), vi("v", ["b", "s", 16]),
                           vi("past_key", ["b", "kv_heads", "past", "kv_cache"]),
                           vi("past_value", ["b", "kv_heads", "past", "kv_cache"]),
                           vi("seqlens", ["b"], T.INT32), vi("total", [], T.INT32)], [vi("o", None)])
    found, _ = relations(m, list(m.graph.input), infer(m))
    assert found == {"b": "1", "kv_heads": "2", "kv_cache": "8"}
