"""FC layers in the forms other exporters write: the weight on the left (W @ x), Einsum, a weight per group, and
the Reshape-wrapped Gemm; each converts and verifies in fp32 and fp16, with the Conv's attributes and the layout
nodes it needs asserted, and each refusal with its reason."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import assert_conv_attributes, assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from test_rewrite import assert_close

DTYPES = [np.float32, np.float16]


def _elem(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _check(m, feed, dtype, names):
    new, report = convert(m)
    assert_converted(report, names)
    assert_conv_attributes(new)
    rel = 1e-5 if dtype == np.float32 else 5e-3
    for got, ref in zip(run(new, feed), run(m, feed)):
        assert_close(got, ref, rel)
    return new, report


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [[16, "m"], ["b", 16, "t"]])
def test_weight_on_the_left_needs_no_transpose(dtype, x_shape):
    """W [32, 16] @ x [16, M] or [B, 16, T], + b [32, 1]: the channels are in place, only Reshapes lay it out."""
    nodes = [helper.make_node("MatMul", ["W", "x"], ["h"], name="wx"), helper.make_node("Add", ["h", "b"], ["y"])]
    out = [32, "m"] if len(x_shape) == 2 else ["b", 32, "t"]
    m = make_model(nodes, [vi("x", x_shape, _elem(dtype))], [vi("y", out, _elem(dtype))],
                   [init("W", rand((32, 16)).astype(dtype)), init("b", rand((32, 1), seed=2).astype(dtype))])
    feed = {"x": rand((16, 7) if len(x_shape) == 2 else (2, 16, 7), dtype)}
    new, report = _check(m, feed, dtype, ["wx"])
    assert report.converted[0].fused_add and "Transpose" not in ops(new) and ops(new).count("Reshape") == 2
    assert report.converted[0].layout == "channels-first"


def test_weight_on_the_left_is_a_rule_of_its_own():
    """W @ x is taken by WeightFirstRule, before the Gemm and MatMul rules (which read the weight on the right):
    without it in the list, the MatMul rule refuses the layer for its right operand."""
    from passes.fc_to_conv.graph.constants import Constants
    from passes.fc_to_conv.graph.graph_index import GraphIndex
    from passes.fc_to_conv.rules import RULES, find_candidates
    from passes.fc_to_conv.rules.weight_first import WeightFirstRule
    nodes = [helper.make_node("MatMul", ["W", "x"], ["h"], name="wx"), helper.make_node("Add", ["h", "b"], ["y"])]
    m = make_model(nodes, [vi("x", [16, "m"])], [vi("y", [32, "m"])],
                   [init("W", rand((32, 16))), init("b", rand((32, 1), seed=2))])
    cands = find_candidates(list(m.graph.node), Constants(GraphIndex(m.graph), m.ir_version, 17))
    assert [(c.name, type(c.rule).__name__, c.add is not None) for c in cands] == [("wx", "WeightFirstRule", True)]
    from passes.fc_to_conv.graph_pass import FcToConvPass
    result = FcToConvPass(rules=[r for r in RULES if not isinstance(r, WeightFirstRule)]).run(m)
    assert [(s.name, s.reason) for s in result.skipped] == [
        ("wx", "the constant is the left operand (W @ x): not a rewritable FC layer")]


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_with_the_constant_as_a(trans_a, trans_b):
    """Y = alpha * A' B' + beta * C with A constant [N, K] (or [K, N]) and B the activation [K, M] (or [M, K])."""
    a = rand((6, 4) if trans_a else (4, 6))
    node = helper.make_node("Gemm", ["A", "B", "C"], ["Y"], name="g", transA=trans_a, transB=trans_b, alpha=0.5,
                            beta=2.0)
    m = make_model([node], [vi("B", ["m", 6] if trans_b else [6, "m"])], [vi("Y", [4, "m"])],
                   [init("A", a), init("C", rand((4, 1), seed=3))])
    new, _ = _check(m, {"B": rand((5, 6) if trans_b else (6, 5))}, np.float32, ["g"])
    assert ops(new).count("Transpose") == trans_b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("equation,w_shape,w_first", [
    ("bsk,kn->bsn", (8, 6), False), ("...k,nk->...n", (6, 8), False), ("kn,bsk->bsn", (8, 6), True),
    ("abc,cd->abd", (8, 6), False), ("ak,kn", (8, 6), False)])
def test_einsum_fc_contractions_convert(dtype, equation, w_shape, w_first):
    x_shape = ["b", 5, 8] if "a" not in equation[:2] or "abc" in equation else ["b", 8]
    ins = ["W", "x"] if w_first else ["x", "W"]
    m = make_model([helper.make_node("Einsum", ins, ["y"], name="e", equation=equation)],
                   [vi("x", x_shape, _elem(dtype))], [vi("y", None, _elem(dtype))],
                   [init("W", rand(w_shape).astype(dtype))])
    feed = {"x": rand((2, 5, 8) if len(x_shape) == 3 else (2, 8), dtype)}
    new, report = _check(m, feed, dtype, ["e"])
    assert report.converted[0].op == "Einsum" and "Einsum" not in ops(new)


@pytest.mark.parametrize("equation,reason", [
    ("bsk,kn", "the output 'bns' is not the activation's dims then the weight's ('bsn')"),
    ("bsk,nk->bns", "the output 'bns' is not the activation's dims then the weight's ('bsn')"),
    ("bks,kn->bsn", "it does not contract the activation's last dim with one dim of the weight"),
    ("bsk,kk->bsk", "the constant operand is not a 2-D weight")])
def test_einsum_that_is_no_fc_layer_says_why(equation, reason):
    m = make_model([helper.make_node("Einsum", ["x", "W"], ["y"], name="e", equation=equation)],
                   [vi("x", ["b", 8, 8])], [vi("y", None)], [init("W", rand((8, 8)))])
    _, report = convert(m, Options(verify=False))
    assert [(s.name, s.reason) for s in report.skipped] == [("e", f"Einsum '{equation}': {reason}")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [["b", 4, "t", 8], [4, "t", 8]])
def test_weight_per_group_is_one_grouped_conv(dtype, x_shape):
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="grouped")],
                   [vi("x", x_shape, _elem(dtype))], [vi("y", None, _elem(dtype))],
                   [init("W", rand((4, 8, 6)).astype(dtype))])
    feed = {"x": rand((2, 4, 5, 8) if len(x_shape) == 4 else (4, 5, 8), dtype)}
    new, report = _check(m, feed, dtype, ["grouped"])
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute} == {"group": 4, "kernel_shape": [1, 1]}
    assert report.converted[0].conv_weight_shape == [24, 8, 1, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_chain_of_reshape_wrapped_gemms_stays_4d(dtype):
    """Three Reshape -> Gemm -> Reshape(Concat(Shape(x)[:2], [N])) layers with Relus: one way in (Reshape,
    Transpose) and one way out for the chain, as for MatMuls on [B, T, K]; the shape computations are gone."""
    import importlib.util
    import os
    from test_cli import ROOT
    spec = importlib.util.spec_from_file_location("make_models", os.path.join(ROOT, "scripts", "make_models.py"))
    mm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mm)
    m = mm.wrapped_gemms()
    if dtype == np.float16:
        for t in m.graph.initializer:
            if t.data_type == onnx.TensorProto.FLOAT:
                t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t).astype(np.float16), t.name))
        for v in list(m.graph.input) + list(m.graph.output):
            v.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    new, report = _check(m, {"x": rand((2, 5, 32), dtype)}, dtype, ["linear0", "linear1", "linear2"])
    assert ops(new) == ["Reshape", "Transpose", "Conv", "Relu", "Conv", "Relu", "Conv", "Transpose", "Reshape"]


def test_the_channels_last_block_leaves_no_identity():
    """Transpose(0,2,3,1) -> MatMul+Add -> Relu -> MatMul+Add -> Transpose(0,3,1,2): the layout cancels; no
    Identity is left where a Transpose pair was."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMul", ["xt", "W1"], ["h"], name="pw1"), helper.make_node("Add", ["h", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["h2"], name="pw2"), helper.make_node("Add", ["h2", "b2"], ["h3"]),
             helper.make_node("Transpose", ["h3"], ["y"], perm=[0, 3, 1, 2])]
    m = make_model(nodes, [vi("x", ["b", 8, 5, 5])], [vi("y", ["b", 8, 5, 5])],
                   [init("W1", rand((8, 32))), init("b1", rand(32)), init("W2", rand((32, 8))), init("b2", rand(8))])
    new, _ = _check(m, {"x": rand((2, 8, 5, 5))}, np.float32, ["pw1", "pw2"])
    assert ops(new) == ["Conv", "Relu", "Conv"]


def test_a_wrapped_gemm_with_constant_shapes_leaves_no_initializer_behind():
    """The dynamo exporter's form (GPT-2's Conv1D): Reshape(x, [-1, K]) -> Gemm -> Reshape(y, [B, T, N]) with both
    shapes constant initializers. Both Reshapes go, and so do their shapes: an unread initializer makes
    onnxruntime print a warning for each one."""
    inits = [init("flat", np.array([-1, 8], np.int64)), init("w", rand((8, 6))), init("b", rand(6, seed=2)),
             init("back", np.array([2, 5, 6], np.int64))]
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["x2"]),
             helper.make_node("Gemm", ["x2", "w", "b"], ["y2"], name="fc"),
             helper.make_node("Reshape", ["y2", "back"], ["y"])]
    m = make_model(nodes, [vi("x", [2, 5, 8])], [vi("y", [2, 5, 6])], inits)
    new, _ = _check(m, {"x": rand((2, 5, 8))}, np.float32, ["fc"])
    assert sorted(t.name for t in new.graph.initializer) == sorted({i for n in new.graph.node for i in n.input[1:]})
    assert not {"flat", "back"} & {t.name for t in new.graph.initializer}


def test_an_add_of_another_dtype_stays_with_a_note_naming_both_dtypes():
    """MatMul(x, W float32) + a float64 constant: the Add is not folded into the Conv's bias and the note says which
    dtype is which. (A type-inconsistent graph, which onnxruntime refuses to run: only the rewrite is looked at.)"""
    w = rand((8, 4), seed=2)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "b"], ["y"], name="add")]
    m = make_model(nodes, [vi("x", ["B", 8])], [vi("y", ["B", 4])], [init("w", w), init("b", np.ones(4, np.float64))])
    _, report = convert(m, Options(verify=False))
    assert [c.name for c in report.converted] == ["fc"], report.text()
    assert report.converted[0].notes == ["Add 'add' kept: its operand is float64, the weight float32"]
