"""Generated verification inputs: valid token ids, consistent dynamic dims, user shapes and data."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv import BadInput
from passes.fc_to_conv.inputs import make_feeds, parse_input_shapes
from passes.fc_to_conv.shapes import infer


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
    from passes.fc_to_conv.inputs import describe
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
