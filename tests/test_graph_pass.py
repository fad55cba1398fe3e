"""The pass as steps in sequence: its PassResult holds the model it edited in place and, per step, whether that
step changed it (onnx-ir's contract: a result with the model and `modified`)."""
from onnx import helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv.graph_pass import FcToConvPass
from passes.fc_to_conv.steps import AFTER_REWRITE


def _fc(ir_version=None):
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], [vi("x", ["b", 5, 8])],
                   [vi("y", ["b", 5, 4])], [init("W", rand((8, 4)))])
    if ir_version is not None:
        m.ir_version = ir_version
    return m


def test_the_result_holds_the_model_and_what_each_step_changed():
    m = _fc()
    result = FcToConvPass().run(m)
    assert result.model is m and result.modified
    assert list(result.steps) == ["convert"] + [s.__name__ for s in AFTER_REWRITE]
    assert result.steps == {"convert": True, "collapse_chains": False, "fuse_sibling_convs": False, "qdq_form": False,
                            "constants_second": False, "unfuse_skip_norms": False, "view_gathers": False,
                            "list_new_initializers": False}
    assert [c.key for c in result.converted] == ["#0"] and "Conv" in [n.op_type for n in m.graph.node]


def test_below_ir_4_the_new_initializers_are_listed_as_inputs_and_the_step_says_so():
    m = _fc(ir_version=3)
    result = FcToConvPass().run(m)
    assert result.steps["list_new_initializers"] is True
    assert {i.name for i in m.graph.input} >= {t.name for t in m.graph.initializer}


def test_a_model_without_fc_layers_is_not_modified():
    m = make_model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2, 3])], [vi("y", [2, 3])], [])
    before = m.SerializeToString()
    result = FcToConvPass().run(m)
    assert not result.modified and set(result.steps.values()) == {False}
    assert m.SerializeToString() == before
