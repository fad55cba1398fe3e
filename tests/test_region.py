"""FC chains stay 4-D: element-wise ops between layers run on images, and each chain leaves its layout once."""
import numpy as np
import pytest
from onnx import helper

from builders import init, make_model, ops, rand, vi
from test_rewrite import convert_and_compare


def mlp_chain(between, x_dims=("n", 8), n=6):
    """fc1 -> <between ops> -> fc2, each FC a MatMul+Add, plus constants the ops need."""
    inits = [init("w1", rand((8, n), seed=1)), init("b1", rand(n, seed=2)), init("w2", rand((n, 4), seed=3)),
             init("b2", rand(4, seed=4)), init("c", rand(n, seed=5)), init("s", np.float32(0.5)),
             init("row_c", rand((3, n), seed=6)), init("lo", np.float32(-0.5)), init("hi", np.float32(0.5))]
    nodes = [helper.make_node("MatMul", ["X", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h0"])]
    prev = "h0"
    for i, (op, extra, kw) in enumerate(between):
        out = f"e{i}"
        nodes.append(helper.make_node(op, [prev] + extra, [out], **kw))
        prev = out
    nodes += [helper.make_node("MatMul", [prev, "w2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["Y"])]
    return make_model(nodes, [vi("X", list(x_dims))], [vi("Y", list(x_dims[:-1]) + [4])], inits)


@pytest.mark.parametrize("between", [
    [("Relu", [], {})],
    [("Relu", [], {}), ("Dropout", [], {})],
    [("Sigmoid", [], {}), ("Mul", ["c"], {}), ("Add", ["c"], {})],
    [("Clip", ["lo", "hi"], {}), ("LeakyRelu", [], {"alpha": 0.1})],
    [("Mul", ["s"], {}), ("Tanh", [], {})],
    [("PRelu", ["c"], {})],
])
@pytest.mark.parametrize("x_dims,shape", [(("n", 8), (3, 8)), (("b", "t", 8), (2, 3, 8))])
def test_chain_stays_4d(between, x_dims, shape):
    m = mlp_chain(between, x_dims)
    new, report = convert_and_compare(m, [{"X": rand(shape)}])
    assert len(report.converted) == 2
    # one way in (Reshape + Transpose), one way out (Transpose + Reshape), nothing between the Convs
    assert ops(new).count("Reshape") == 2 and ops(new).count("Transpose") == 2
    assert ops(new)[:2] == ["Reshape", "Transpose"] and ops(new)[-2:] == ["Transpose", "Reshape"]


def test_row_varying_constant_stops_the_chain():
    m = mlp_chain([("Add", ["row_c"], {})], (3, 8))
    new, report = convert_and_compare(m, [{"X": rand((3, 8))}])
    assert ops(new).count("Reshape") == 4, "the Add of a [3, N] constant runs in the original shape"


def test_intermediate_read_outside_leaves_once_more():
    """h0 is also a graph output: it leaves the layout there, and the chain still continues as images."""
    m = mlp_chain([("Relu", [], {})])
    m.graph.output.append(vi("h0", ["n", 6]))
    new, report = convert_and_compare(m, [{"X": rand((3, 8))}])
    assert ops(new).count("Reshape") == 3
    assert [o.name for o in new.graph.output] == ["Y", "h0"]


def test_trailing_elementwise_op_stays_outside():
    """A Relu after the last FC reaches no FC: it is not moved, the chain leaves before it."""
    m = mlp_chain([])
    m.graph.node.append(helper.make_node("Relu", ["Y"], ["Z"]))
    m.graph.output[0].CopyFrom(vi("Z", ["n", 4]))
    new, _ = convert_and_compare(m, [{"X": rand((3, 8))}])
    assert ops(new)[-1] == "Relu"


def test_layers_reading_one_activation_share_the_way_in():
    nodes = [helper.make_node("MatMul", ["X", w], [o]) for w, o in [("wq", "q"), ("wk", "k"), ("wv", "v")]]
    nodes.append(helper.make_node("Sum", ["q", "k", "v"], ["Y"]))
    m = make_model(nodes, [vi("X", ["b", "t", 8])], [vi("Y", ["b", "t", 8])],
                   [init(w, rand((8, 8), seed=i)) for i, w in enumerate(["wq", "wk", "wv"])])
    new, _ = convert_and_compare(m, [{"X": rand((2, 5, 8))}])
    # one way in for all three (instead of three), three ways out to the Sum; on the default target the three
    # Convs on that image are one, and a Split (siblings.py; test_siblings.py)
    assert ops(new).count("Transpose") == 4 and ops(new).count("Reshape") == 4, ops(new)
    assert ops(new)[:4] == ["Reshape", "Transpose", "Conv", "Split"] and ops(new)[4:].count("Conv") == 0, ops(new)
