"""The graph facts every step reads: readers (subgraph references included), producers, read counts, and the
clean-up that removes only what nothing reads."""
import numpy as np
from onnx import TensorProto, helper

from builders import init, make_model, vi
from passes.fc_to_conv.rewrite.cleanup import prune
from passes.fc_to_conv.graph.graph_index import GraphIndex, Names, producers, read_counts, readers


def _model():
    body = helper.make_graph([helper.make_node("Add", ["x", "outer_w"], ["t"])], "then", [], [vi("t", [2])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e", [2])])
    nodes = [helper.make_node("Neg", ["w"], ["outer_w"], name="neg"),
             helper.make_node("Relu", ["unused_w"], ["dead"], name="dead_relu"),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=body, else_branch=other)]
    return make_model(nodes, [vi("x", [2]), vi("cond", [], TensorProto.BOOL)], [vi("y", [2])],
                      [init("w", np.ones(2, np.float32)), init("unused_w", np.ones(2, np.float32))])


def test_a_subgraph_reference_counts_as_a_read_of_its_node():
    m = _model()
    found = readers(m.graph.node)
    assert [n.name for n in found["outer_w"]] == ["branch"] and [n.name for n in found["x"]] == ["branch"]
    assert producers(m.graph.node)["outer_w"].name == "neg"
    counts = read_counts(m.graph.node, m.graph)
    assert counts["y"] == 1 and counts["outer_w"] == 1 and "dead" not in counts
    index = GraphIndex(m.graph)
    assert index.is_used("outer_w") and not index.is_used("dead")


def test_prune_removes_only_what_nothing_reads():
    m = _model()
    prune(m.graph, {"dead", "outer_w"}, m.ir_version)
    assert [n.name for n in m.graph.node] == ["neg", "branch"], "the If body still reads outer_w"
    assert [t.name for t in m.graph.initializer] == ["w"]


def test_fresh_names_avoid_every_name_in_every_scope():
    names = Names(_model().graph)
    assert names.fresh("t") == "t_1" and names.fresh("t") == "t_2" and names.fresh("new") == "new"
