"""constants.py folds the small ops exporters compute weights with; each folded value must equal what onnxruntime
computes for the same nodes (exactly: these ops do no arithmetic that could round differently, except Div of
floats, compared within 1 ulp)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import init, make_model, run, vi
from passes.fc_to_conv.graph.constants import Constants
from passes.fc_to_conv.graph.graph_index import GraphIndex

I64 = TensorProto.INT64


def _fold_and_run(nodes, inits, out, elem, shape):
    m = make_model(nodes, [], [vi(out, shape, elem)], inits)
    folded = Constants(GraphIndex(m.graph), m.ir_version, 17).value(out)
    return folded, run(m, {})[0]


@pytest.mark.parametrize("a,b", [([-7, 7, -8, 9, 0], [2, 2, 3, -4, 5]), ([-1, -2, -3], [-2, -2, -2])])
def test_integer_div_truncates_like_onnxruntime(a, b):
    """ONNX Div of integers truncates toward zero: -7 / 2 = -3, where numpy's floor division gives -4."""
    nodes = [helper.make_node("Div", ["a", "b"], ["q"])]
    inits = [init("a", np.array(a, np.int64)), init("b", np.array(b, np.int64))]
    folded, ref = _fold_and_run(nodes, inits, "q", I64, [len(a)])
    assert folded.dtype == np.int64 and np.array_equal(folded, ref)


def test_float_div_mul_add_sub():
    rng = np.random.default_rng(0)
    inits = [init(n, rng.standard_normal((3, 4)).astype(np.float32)) for n in "abcd"]
    nodes = [helper.make_node("Div", ["a", "b"], ["q"]), helper.make_node("Mul", ["q", "c"], ["p"]),
             helper.make_node("Add", ["p", "d"], ["s"]), helper.make_node("Sub", ["s", "a"], ["y"])]
    folded, ref = _fold_and_run(nodes, inits, "y", TensorProto.FLOAT, [3, 4])
    np.testing.assert_array_max_ulp(folded, ref, maxulp=1)


def test_layout_ops_and_constant_of_shape():
    """Reshape with 0 (copy a dim), Transpose, Unsqueeze and Squeeze with axes inputs, Flatten, Cast,
    ConstantOfShape: bit for bit."""
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    nodes = [helper.make_node("Reshape", ["w", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
             helper.make_node("Unsqueeze", ["t", "axes"], ["u"]),
             helper.make_node("Squeeze", ["u", "axes"], ["s"]),
             helper.make_node("Flatten", ["s"], ["f"], axis=2),
             helper.make_node("Cast", ["f"], ["c"], to=TensorProto.FLOAT16),
             helper.make_node("ConstantOfShape", ["dims"], ["ones"],
                              value=helper.make_tensor("v", TensorProto.FLOAT16, [1], [0.5])),
             helper.make_node("Mul", ["c", "ones"], ["y"])]
    inits = [init("w", w), init("shape", np.array([0, 12, -1], np.int64)), init("axes", np.array([1], np.int64)),
             init("dims", np.array([2, 12], np.int64))]
    folded, ref = _fold_and_run(nodes, inits, "y", TensorProto.FLOAT16, [2, 12])
    assert folded.dtype == ref.dtype and np.array_equal(folded, ref)


def test_a_value_from_a_graph_input_is_not_constant():
    nodes = [helper.make_node("Mul", ["w", "x"], ["y"])]
    m = make_model(nodes, [vi("x", [2])], [vi("y", [2])], [init("w", np.ones(2, np.float32))])
    consts = Constants(GraphIndex(m.graph), m.ir_version, 17)
    assert consts.value("y") is None
    assert consts.reason("y") == "'y' is computed from run-time values by Mul"


def _fold_all_and_run(nodes, inits, outs, opset):
    m = make_model(nodes, [], [vi(o, None, TensorProto.FLOAT) for o in outs], inits, opset=opset)
    consts = Constants(GraphIndex(m.graph), m.ir_version, opset)
    return [consts.value(o) for o in outs], run(m, {})


X = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)


@pytest.mark.parametrize("node,inits,outs,opset", [
    (helper.make_node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3), [], ["a", "b", "c"], 18),  # 3, 3, 1
    (helper.make_node("Split", ["x", "s"], ["a", "b"], axis=-1), [init("s", np.array([2, 3], np.int64))],
     ["a", "b"], 13),
    (helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[4, 1]), [], ["a", "b"], 11),
    (helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["a"]),         # reversed rows, INT64 bounds
     [init("st", np.array([-1], np.int64)), init("en", np.array([-2**63], np.int64)), init("ax", np.array([0], np.int64)),
      init("sp", np.array([-2], np.int64))], ["a"], 13),
    (helper.make_node("Slice", ["x", "st", "en"], ["a"]),
     [init("st", np.array([1, 2], np.int64)), init("en", np.array([2**63 - 1, 4], np.int64))], ["a"], 13),
    (helper.make_node("Gather", ["x", "i"], ["a"], axis=1), [init("i", np.array([[-1, 0], [2, -5]], np.int64))],
     ["a"], 13),
])
def test_split_slice_gather_fold_as_onnxruntime_computes(node, inits, outs, opset):
    folded, ran = _fold_all_and_run([node], [init("x", X), *inits], outs, opset)
    assert len(folded) == len(ran)
    for f, r in zip(folded, ran):
        np.testing.assert_array_equal(f, r)
