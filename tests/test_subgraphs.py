"""FC layers inside If, Loop and Scan bodies convert too, with weights from the body or the outer scope."""
import numpy as np
import onnx
from onnx import TensorProto, helper

from builders import assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import convert
from test_rewrite import assert_close

B = TensorProto.BOOL


def body_ops(model):
    out = []
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += [n.op_type for n in a.g.node]
    return out


def if_model(ir=8, opset=17):
    then_g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["t"], name="then_fc")], "then", [],
                               [vi("t", ["n", 3])])
    # below IR 4 a subgraph's initializers must be its inputs too, which an If branch cannot have: use W there
    local = [] if ir < 4 else [init("W2", rand((4, 3), seed=7))]
    else_g = helper.make_graph([helper.make_node("Gemm", ["X", "W2" if local else "W", "Cb"], ["e"], name="else_fc",
                                                 alpha=2.0)], "else", [], [vi("e", ["n", 3])], local)
    nodes = [helper.make_node("If", ["cond"], ["Y"], name="branch", then_branch=then_g, else_branch=else_g)]
    return make_model(nodes, [vi("X", ["n", 4]), vi("cond", [], B)], [vi("Y", ["n", 3])],
                      [init("W", rand((4, 3), seed=6)), init("Cb", rand(3, seed=8))], opset=opset, ir=ir)


def test_if_branches_with_outer_and_local_weights():
    m = if_model()
    new, report = convert(m)
    assert report.verified, report.text()
    assert sorted(c.name for c in report.converted) == ["branch.else_branch/else_fc", "branch.then_branch/then_fc"]
    assert "MatMul" not in body_ops(new) and "Gemm" not in body_ops(new) and body_ops(new).count("Conv") == 2
    names = {t.name for t in new.graph.initializer}
    assert "W" not in names, "the outer weight the branch no longer reads is gone"
    x = rand((5, 4))
    for cond in (True, False):
        feed = {"X": x, "cond": np.array(cond)}
        assert_close(run(new, feed)[0], run(m, feed)[0])


def test_ir3_if_keeps_initializers_listed_as_inputs():
    m = if_model(ir=3, opset=8)
    m.graph.input.extend([vi("W", [4, 3]), vi("Cb", [3])])
    new, report = convert(m)
    assert_converted(report, ["branch.then_branch/then_fc", "branch.else_branch/else_fc"])
    assert new.ir_version == 3
    inits = {t.name for t in new.graph.initializer}
    assert inits <= {i.name for i in new.graph.input}


def test_loop_body_with_outer_weight():
    """y_{i+1} = Relu(y_i @ W + b), 3 iterations, W and b from the outer graph."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["y_in", "W"], ["mm"], name="loop_fc"),
         helper.make_node("Add", ["mm", "b"], ["pre"]), helper.make_node("Relu", ["pre"], ["y_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], B), vi("y_in", ["n", 6])],
        [vi("cond_out", [], B), vi("y_out", ["n", 6])])
    nodes = [helper.make_node("Loop", ["trips", "", "X"], ["Y"], name="loop", body=body)]
    m = make_model(nodes, [vi("X", ["n", 6])], [vi("Y", ["n", 6])],
                   [init("W", rand((6, 6), seed=2) * 0.3), init("b", rand(6, seed=3)),
                    init("trips", np.array(3, np.int64))])
    new, report = convert(m)
    assert report.verified, report.text()
    assert [c.name for c in report.converted] == ["loop.body/loop_fc"] and report.converted[0].fused_add
    assert "MatMul" not in body_ops(new)
    x = rand((4, 6))
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_scan_body():
    body = helper.make_graph([helper.make_node("MatMul", ["row", "W"], ["out"], name="scan_fc"),
                              helper.make_node("Identity", ["s_in"], ["s_out"])], "body",
                             [vi("s_in", [1]), vi("row", [5])], [vi("s_out", [1]), vi("out", [3])])
    nodes = [helper.make_node("Scan", ["s0", "X"], ["s", "Y"], name="scan", body=body, num_scan_inputs=1)]
    m = make_model(nodes, [vi("s0", [1]), vi("X", [4, 5])], [vi("s", [1]), vi("Y", [4, 3])],
                   [init("W", rand((5, 3), seed=4))])
    new, report = convert(m)
    assert report.verified, report.text()
    assert [c.name for c in report.converted] == ["scan.body/scan_fc"]
    assert report.converted[0].input_shape == [5]


def test_chains_collapse_in_a_body_and_around_it():
    """A run with chains in the main graph and inside an If branch: the main graph's collapses (the branch's dims
    are unknown to shape inference there, so its chain stays as it is), and nothing is edited twice."""
    from test_simplify import heads_model
    m = heads_model([0, 2, 3, 1])
    branch = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W2"], ["t"], name="then_fc"), helper.make_node("Reshape", ["t", "hs"], ["t4"]),
         helper.make_node("Transpose", ["t4"], ["tt"], perm=[0, 2, 3, 1])], "then", [], [vi("tt", ["b", 4, 16, "t"])])
    m.graph.node.append(helper.make_node("If", ["c"], ["Z"], name="if", then_branch=branch, else_branch=branch))
    m.graph.input.append(vi("c", [], B))
    m.graph.output.append(vi("Z", ["b", 4, 16, "t"]))
    m.graph.initializer.extend([init("W2", rand((64, 64), seed=5)), init("hs", np.array([0, 0, 4, 16], np.int64))])
    new, report = convert(m)
    assert report.verified and len(report.converted) == 3, report.text()
    assert ops(new) == ["Reshape", "Transpose", "Conv", "Reshape", "If"]
    assert body_ops(new).count("Conv") == 2 and "MatMul" not in body_ops(new)  # then and else branches
