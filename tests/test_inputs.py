"""Generated verification inputs: valid token ids, consistent dynamic dims, user shapes and data."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv import BadInput
from passes.fc_to_conv.verify.inputs import make_feeds, parse_input_shapes
from passes.fc_to_conv.graph.shapes import infer


def embedding_model():
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]),
             helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["mf", "ax"], ["m3"]),
             helper.make_node("Mul", ["e", "m3"], ["Y"])]
    return make_model(nodes, [vi("ids", ["batch", "seq"], TensorProto.INT64),
                              vi("mask", ["batch", "seq"], TensorProto.INT64)],
                      [vi("Y", ["batch", "seq", 8])],
                      [init("emb", rand((50, 8))), init("ax", np.array([2], np.int64))])


def test_token_ids_are_valid_and_masks_vary_without_masking_a_whole_row():
    m = embedding_model()
    feeds = make_feeds(m, infer(m), sets=3)
    for feed in feeds:
        assert feed["ids"].dtype == np.int64 and feed["ids"].min() >= 0 and feed["ids"].max() < 50
        assert set(np.unique(feed["mask"])) <= {0, 1} and np.all(feed["mask"][:, 0] == 1)
        assert feed["ids"].shape == feed["mask"].shape, "the same dim_param gets the same value"
    assert any(np.any(f["mask"] == 0) for f in feeds), "a mask of ones masks nothing"
    assert [f["ids"].shape for f in feeds] == [(2, 3), (3, 4), (4, 5)], "dims differ from each other and per set"


def test_fixed_shapes_and_given_data():
    m = embedding_model()
    given = {"ids": np.zeros((1, 7), np.int64)}
    feeds = make_feeds(m, infer(m), sets=2, fixed={"mask": [1, 7]}, given=given)
    assert all(f["mask"].shape == (1, 7) and f["ids"] is given["ids"] for f in feeds)


def test_unknown_input_name_is_refused():
    m = embedding_model()
    with pytest.raises(BadInput, match="'idz' is not an input of the model; its inputs are: ids, mask"):
        make_feeds(m, infer(m), sets=1, fixed={"idz": [1, 2]})


@pytest.mark.parametrize("spec", ["ids", "ids:1xa", ":1x2", "ids:-1x2"])
def test_bad_shape_specs(spec):
    with pytest.raises(BadInput, match="expected NAME:DxD"):
        parse_input_shapes([spec])


def test_shape_spec_parsing():
    assert parse_input_shapes(["input_ids:1x128", "ns:scope:x:2"]) == {"input_ids": [1, 128], "ns:scope:x": [2]}


def test_onehot_indices_cover_the_depth_and_constant_inputs_are_flagged():
    """magika's bytes (int32, 0-256) feed a OneHot of depth 257: they take values across [0, depth), not all ones;
    describe() names each input and flags one whose every value is the same."""
    from passes.fc_to_conv.verify.inputs import describe
    nodes = [helper.make_node("OneHot", ["bytes", "depth", "onoff"], ["oh"], axis=-1),
             helper.make_node("ReduceSum", ["oh"], ["Y"], keepdims=0)]
    m = make_model(nodes, [vi("bytes", ["batch", 2048], TensorProto.INT32)], [vi("Y", [])],
                   [init("depth", np.array(257, np.int64)), init("onoff", np.array([0, 1], np.float32))])
    feeds = make_feeds(m, infer(m), sets=2)
    values = np.concatenate([f["bytes"].reshape(-1) for f in feeds])
    assert values.min() >= 0 and values.max() < 257 and len(np.unique(values)) > 200
    assert describe(feeds) == "bytes [2, 2048] / [3, 2048]"
    flat = [{"x": np.ones((2, 3), np.int64), "n": np.array(4)}, {"x": np.ones((3, 3), np.int64), "n": np.array(4)}]
    assert describe(flat) == "x [2, 3] / [3, 3] (CONSTANT: every value 1), n = 4"


def kv_model(total="past_sequence_length + sequence_length"):
    """A decoder step with a KV cache (as optimum and torch's exporters write it): the new key joins past_key along
    the sequence, and the attention mask covers past + new tokens (its dim named by an expression)."""
    d = 8
    nodes = [helper.make_node("Gather", ["E", "input_ids"], ["emb"]),
             helper.make_node("MatMul", ["emb", "Wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["emb", "Wq"], ["q"], name="q_proj"),
             helper.make_node("Unsqueeze", ["k", "ax1"], ["k4"]), helper.make_node("Unsqueeze", ["q", "ax1"], ["q4"]),
             helper.make_node("Concat", ["past_key", "k4"], ["present_key"], axis=2),
             helper.make_node("Transpose", ["present_key"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q4", "kt"], ["scores"]),
             helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["mf", "ax12"], ["m4"]),
             helper.make_node("Mul", ["scores", "m4"], ["logits"])]
    inits = [init("E", rand((50, d), seed=1)), init("Wk", rand((d, d), seed=2)), init("Wq", rand((d, d), seed=3)),
             init("ax1", np.array([1], np.int64)), init("ax12", np.array([1, 2], np.int64))]
    past, seq = [p.strip() for p in total.split("+")] if "+" in total else ("past_sequence_length", "1")
    ins = [vi("input_ids", ["batch", seq if not seq.isdigit() else int(seq)], TensorProto.INT64),
           vi("past_key", ["batch", 1, past, d]), vi("attention_mask", ["batch", total], TensorProto.INT64)]
    outs = [vi("logits", ["batch", 1, seq if not seq.isdigit() else int(seq), total]),
            vi("present_key", ["batch", 1, total, d])]
    return make_model(nodes, ins, outs, inits)


@pytest.mark.parametrize("total", ["past_sequence_length + sequence_length", "s0 + s1", "past_sequence_length + 1"])
def test_a_kv_cache_decoder_gets_inputs_that_agree(total):
    """The mask is as long as past + new tokens in every set: its dim is evaluated from the names in its expression
    (optimum's 'past_sequence_length + 1', torch's 's0 + s1'); it was a symbol of its own, and the original failed on
    every input tried."""
    m = kv_model(total)
    for feed in make_feeds(m, infer(m), sets=3):
        assert feed["attention_mask"].shape[1] == feed["past_key"].shape[2] + feed["input_ids"].shape[1], feed
        assert feed["attention_mask"].shape[0] == feed["past_key"].shape[0] == feed["input_ids"].shape[0]


def test_a_kv_cache_decoder_verifies_with_no_option():
    from passes.fc_to_conv import convert
    _, report = convert(kv_model())
    assert report.verified and sorted(c.name for c in report.converted) == ["k_proj", "q_proj"], report.text()
    assert not report.verification.fallback and "attention_mask [2, 7]" in report.verification.inputs


def test_a_fixed_shape_sets_the_names_it_holds_for_the_other_inputs():
    m = kv_model()
    feeds = make_feeds(m, infer(m), sets=2, fixed={"past_key": [1, 1, 9, 8]})
    assert [f["attention_mask"].shape for f in feeds] == [(1, 11), (1, 10)]   # the second set: one decode step
    assert [f["input_ids"].shape for f in feeds] == [(1, 2), (1, 1)]


def test_a_kv_cache_decoder_exported_by_torch_verifies_with_no_option():
    """models/hf_llama_kv.onnx (scripts/export_decoders.py: transformers' LLaMA, one decode step, torch's dynamo
    exporter) names its mask dim 'past + 1': the generated mask is one longer than the past in every set, and the
    model verifies on those inputs, not on fallback ones (before, it ran only on a 512-long mask against a past of 1)."""
    import os
    import onnx
    from passes.fc_to_conv import convert
    m = onnx.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "hf_llama_kv.onnx"))
    for feed in make_feeds(m, infer(m), sets=3):
        assert feed["attention_mask"].shape[1] == feed["past_key_0"].shape[2] + 1
    _, report = convert(m)
    assert report.verified and not report.verification.fallback, report.text()
    assert len(report.converted) == 15 and not report.reverted, report.text()
