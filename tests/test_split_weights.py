"""Weights that reach an FC layer through Split, Slice or Gather of a constant (issue 25, case 5): torch's
nn.MultiheadAttention exports its packed in-projection as Transpose(Split(W [3E, E])), and these layers were
skipped as "activation x activation" products. Each converts, and the model matches a float64 numpy reference of
the original's function (fp32 over K = 8 terms: 1e-5 relative; measured under 1e-6)."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import init, make_model, run, vi
from passes.fc_to_conv import convert

E = 8
rng = np.random.default_rng(7)
PACKED = (rng.standard_normal((3 * E, E)) * 0.3).astype(np.float32)   # [q; k; v] rows, torch's in_proj_weight


def _packed(split: onnx.NodeProto, opset: int, inits=()) -> onnx.ModelProto:
    nodes = [split] + [helper.make_node("Transpose", [f"w{i}"], [f"w{i}T"], perm=[1, 0]) for i in range(3)] + \
        [helper.make_node("MatMul", ["x", f"w{i}T"], [f"y{i}"], name=f"proj{i}") for i in range(3)]
    return make_model(nodes, [vi("x", ["b", "t", E])], [vi(f"y{i}", ["b", "t", E]) for i in range(3)],
                      [init("W", PACKED), *inits], opset=opset)


SPLITS = {
    "opset 13, sizes input": lambda: _packed(helper.make_node("Split", ["W", "sizes"], ["w0", "w1", "w2"], axis=0),
                                              13, [init("sizes", np.array([E, E, E], np.int64))]),
    "opset 18, num_outputs": lambda: _packed(helper.make_node("Split", ["W"], ["w0", "w1", "w2"], axis=0,
                                                              num_outputs=3), 18),
    "opset 11, split attribute": lambda: _packed(helper.make_node("Split", ["W"], ["w0", "w1", "w2"], axis=0,
                                                                  split=[E, E, E]), 11),
}


def _check(model, out, want):
    feed = {"x": rng.standard_normal((2, 3, E)).astype(np.float32)}
    x = feed["x"].astype(np.float64)
    for got, w in zip(run(out, feed), want):
        np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", SPLITS)
def test_packed_in_projection_through_split_converts(name):
    model = SPLITS[name]()
    out, report = convert(model)
    assert sorted(c.name for c in report.converted) == ["proj0", "proj1", "proj2"], report.text()
    assert report.verified, report.text()
    assert not any(n.op_type == "MatMul" for n in out.graph.node)
    w = PACKED.astype(np.float64)
    _check(model, out, [w[i * E:(i + 1) * E].T for i in range(3)])


def test_weights_through_slice_and_gather_convert():
    table = (rng.standard_normal((4, E, E)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Slice", ["W", "st", "en", "ax"], ["ws"]),           # rows E..2E: k's rows
             helper.make_node("Transpose", ["ws"], ["wsT"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wsT"], ["y0"], name="sliced"),
             helper.make_node("Gather", ["T", "idx"], ["wg"], axis=0),           # table[-2]: a scalar index
             helper.make_node("MatMul", ["x", "wg"], ["y1"], name="gathered")]
    model = make_model(nodes, [vi("x", ["b", "t", E])], [vi("y0", ["b", "t", E]), vi("y1", ["b", "t", E])],
                       [init("W", PACKED), init("st", np.array([E], np.int64)), init("en", np.array([2 * E], np.int64)),
                        init("ax", np.array([0], np.int64)), init("T", table), init("idx", np.array(-2, np.int64))])
    out, report = convert(model)
    assert sorted(c.name for c in report.converted) == ["gathered", "sliced"] and report.verified, report.text()
    _check(model, out, [PACKED[E:2 * E].astype(np.float64).T, table[-2].astype(np.float64)])


def test_a_split_still_read_elsewhere_stays():
    """One part feeds a layer, another a graph output: the Split stays for the output, the layer converts."""
    nodes = [helper.make_node("Split", ["W", "sizes"], ["w0", "rest"], axis=0),
             helper.make_node("Transpose", ["w0"], ["w0T"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "w0T"], ["y"], name="proj")]
    model = make_model(nodes, [vi("x", ["b", E])], [vi("y", ["b", E]), vi("rest", [2 * E, E])],
                       [init("W", PACKED), init("sizes", np.array([E, 2 * E], np.int64))], opset=13)
    out, report = convert(model)
    assert [c.name for c in report.converted] == ["proj"] and report.verified, report.text()
    assert [n.op_type for n in out.graph.node].count("Split") == 1
    feed = {"x": rng.standard_normal((3, E)).astype(np.float32)}
    y, rest = run(out, feed)
    np.testing.assert_allclose(y, feed["x"].astype(np.float64) @ PACKED[:E].astype(np.float64).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rest, PACKED[E:])
