"""Each rule on its own: what it matches, and the Plan its check returns (weights folded against float64 numpy).
The reasons a check refuses with are asserted in tests/test_check.py, through the whole pass."""
import numpy as np
import pytest
from onnx import helper

from builders import init, make_model, rand, vi
from passes.fc_to_conv.graph.constants import Constants
from passes.fc_to_conv.graph.graph_index import GraphIndex
from passes.fc_to_conv.rules import RULES, CheckContext, Head, Plan, find_candidates
from passes.fc_to_conv.rules.gemm import GemmRule
from passes.fc_to_conv.rules.matmul import MatMulAddRule, MatMulRule
from passes.fc_to_conv.graph.shapes import infer


def _context(m, mode="full"):
    return CheckContext(Constants(GraphIndex(m.graph), m.ir_version, 17), infer(m), 17, mode)


def _model(extra_reader=False):
    nodes = [helper.make_node("Gemm", ["X", "A", "c"], ["g"], name="gemm", transB=1, alpha=0.5, beta=2.0),
             helper.make_node("MatMul", ["g", "B"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["y"], name="add"),
             helper.make_node("MatMul", ["y", "B2"], ["z"], name="plain")]
    outputs = [vi("z", ["n", 3])] + ([vi("m", ["n", 5])] if extra_reader else [])
    inits = [init("A", rand((4, 6), seed=1)), init("c", rand(4, seed=2)), init("B", rand((4, 5), seed=3)),
             init("b", rand(5, seed=4)), init("B2", rand((5, 3), seed=5))]
    return make_model(nodes, [vi("X", ["n", 6])], outputs, inits)


def test_each_node_is_taken_by_the_first_rule_that_matches():
    m = _model()
    cands = find_candidates(list(m.graph.node), _context(m).consts)
    assert [(c.name, type(c.rule).__name__) for c in cands] == [
        ("gemm", "GemmRule"), ("mm", "MatMulAddRule"), ("plain", "MatMulRule")]
    assert [type(r).__name__ for r in RULES] == ["WeightFirstRule", "WrappedGemmRule", "GemmRule", "WrappedMatMulRule", "MatMulAddRule", "MatMulRule", "EinsumRule", "QLinearMatMulRule",
                                                "QGemmRule", "MatMulNBitsAddRule", "MatMulNBitsRule", "KnownRule",
                                                "MatMulIntegerRule"]


def test_matmul_add_needs_the_add_to_be_the_only_reader():
    m = _model(extra_reader=True)   # 'm' is also a graph output: the Add cannot absorb it
    index = _context(m).consts
    mm = m.graph.node[1]
    assert MatMulAddRule().match(mm, index) is None and MatMulRule().match(mm, index).add is None
    assert GemmRule().match(mm, index) is None and MatMulRule().match(m.graph.node[0], index) is None


def test_gemm_plan_folds_alpha_transb_and_beta():
    m = _model()
    cand = GemmRule().match(m.graph.node[0], _context(m).consts)
    plan = cand.rule.check(cand, _context(m))
    assert isinstance(plan, Plan) and plan.op.name == "Conv" and (plan.k, plan.n) == (6, 4)
    assert plan.x_dims == ["n", 6] and plan.layer.kernel == (1, 1) and plan.weight_shape == [4, 6, 1, 1]
    a = rand((4, 6), seed=1).astype(np.float64)
    np.testing.assert_allclose(plan.fold_weight()[:, :, 0, 0], 0.5 * a, rtol=1e-7)
    np.testing.assert_allclose(plan.bias, 2.0 * rand(4, seed=2).astype(np.float64), rtol=1e-7)
    assert plan.weight_key == ("A", True, 0.5) and plan.bias_key == ("c", 2.0)


def test_matmul_add_plan_fuses_the_bias():
    m = _model()
    cand = MatMulAddRule().match(m.graph.node[1], _context(m).consts)
    plan = cand.rule.check(cand, _context(m))
    assert plan.fuse_add and plan.output == "y" and plan.weight_shape == [5, 4, 1, 1]
    assert np.array_equal(plan.fold_weight()[:, :, 0, 0], rand((4, 5), seed=3).T)
    assert np.array_equal(plan.bias, rand(5, seed=4))


@pytest.mark.parametrize("mode,kernel", [("full", (2, 3)), ("1x1", (1, 1))])
def test_head_plan_in_each_mode(mode, kernel):
    nodes = [helper.make_node("Flatten", ["X"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "W"], ["Y"], name="fc", transB=1)]
    m = make_model(nodes, [vi("X", ["n", 4, 2, 3])], [vi("Y", ["n", 5])], [init("W", rand((5, 24)))])
    cand = GemmRule().match(m.graph.node[1], _context(m).consts)
    plan = cand.rule.check(cand, _context(m, mode))
    assert plan.layer.kernel == kernel and isinstance(plan.layer, Head) == (mode == "full")
    if mode == "full":
        assert plan.weight_shape == [5, 4, 2, 3] and plan.layer.map == "X"
        assert np.array_equal(plan.fold_weight(), rand((5, 24)).reshape(5, 4, 2, 3))


def test_a_rule_appended_as_the_readme_says_keeps_convert_dynamic_working(monkeypatch):
    """A new form is a new rule appended to rules.RULES: the MatMulInteger rule then no longer stands last, and
    rules(convert_dynamic=True) must still set its flag (it replaced the last rule, the new one, by position)."""
    from passes.fc_to_conv import Options, convert, rules as rules_mod
    from passes.fc_to_conv.rules.qlinear import MatMulIntegerRule
    from test_quantized import matmul_integer_model

    class Never:
        op = "Never"

        def match(self, node, index):
            return None

        def check(self, cand, ctx):
            raise AssertionError("never matched")
    monkeypatch.setattr(rules_mod, "RULES", rules_mod.RULES + [Never()])
    built = rules_mod.rules(convert_dynamic=True)
    assert isinstance(built[-1], Never) and len(built) == len(rules_mod.RULES)
    assert [r.convert for r in built if isinstance(r, MatMulIntegerRule)] == [True]
    _, report = convert(matmul_integer_model((8, 6)), Options(convert_dynamic=True))
    assert [c.name for c in report.converted] == ["mmi"], report.text()


def test_a_product_of_two_constants_is_no_fc_layer():
    """DeBERTa-v2's relative embeddings times its query/key projections: both operands constants (here the left
    one a Constant node, then a Transpose), left alone with the reason instead of becoming a Conv on a constant."""
    import numpy as np
    from onnx import helper, numpy_helper
    from builders import init, make_model, vi
    from passes.fc_to_conv import convert
    rng = np.random.default_rng(0)
    emb = numpy_helper.from_array(rng.standard_normal((8, 6)).astype(np.float32), "emb")
    nodes = [helper.make_node("Constant", [], ["rel"], value=emb),
             helper.make_node("Transpose", ["rel"], ["relT"], perm=[1, 0]),
             helper.make_node("MatMul", ["relT", "wq"], ["pos"], name="pos_proj"),
             helper.make_node("MatMul", ["x", "wk"], ["h"], name="key_proj"),
             helper.make_node("MatMul", ["h", "pos"], ["y"], name="scores")]
    m = make_model(nodes, [vi("x", ["b", 4])], [vi("y", ["b", 5])],
                   [init("wq", rng.standard_normal((8, 5)).astype(np.float32)),
                    init("wk", rng.standard_normal((4, 6)).astype(np.float32))])
    out, report = convert(m)
    skipped = {s.name: s.reason for s in report.skipped}
    assert skipped["pos_proj"].startswith("both operands are constants"), report.text()
    assert skipped["scores"] == ("weight 'pos' is computed from constants by MatMul node 'pos_proj', which fc2conv "
                                 "does not fold: not converted")
    assert [c.name for c in report.converted] == ["key_proj"] and report.verified, report.text()
    assert sum(n.op_type == "Conv" for n in out.graph.node) == 1
