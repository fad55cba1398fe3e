"""Every refusal keeps the node and says why; every acceptance that keeps something says that too."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import gemm_model, init, make_model, matmul_add_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert

NO_VERIFY = Options(verify=False)


def skipped_reason(model, op="MatMul"):
    new, report = convert(model, NO_VERIFY)
    assert not report.converted
    assert ops(new).count(op) == ops(model).count(op), "a skipped node must stay"
    assert len(report.skipped) == 1
    return report.skipped[0].reason


def test_weight_from_graph_input_is_skipped():
    m = make_model([helper.make_node("MatMul", ["X", "W"], ["Y"])], [vi("X", [2, 4]), vi("W", [4, 3])],
                   [vi("Y", [2, 3])])
    assert skipped_reason(m) == "weight is not a constant: 'W' is a graph input, not a constant"


def test_overridable_initializer_is_skipped_from_ir4():
    m = matmul_add_model([2, 4], 4, 3)
    m.graph.input.append(vi("W", [4, 3]))
    assert "'W' is an initializer that is also a graph input (IR version 8 >= 4): the caller can override it" \
        in skipped_reason(m)


def test_ir3_initializers_listed_as_inputs_are_constants():
    m = matmul_add_model([2, 4], 4, 3, bias_shape=(3,), opset=8, ir=3)
    m.graph.input.extend([vi("W", [4, 3]), vi("bias", [3])])
    new, report = convert(m)
    assert report.verified, report.text()
    assert [c.name for c in report.converted] == ["matmul"]
    assert new.ir_version == 3 and new.opset_import[0].version == 8
    # as IR 3 requires, the new initializers are listed as inputs, and the unused originals are gone from both
    inits = {t.name for t in new.graph.initializer}
    assert {i.name for i in new.graph.input} == {"X"} | inits
    assert "W" not in inits and "bias" not in inits and "W_conv" in inits


@pytest.mark.parametrize("dtype,reason", [
    (np.int32, "int32 weights: Conv has no form for this type (integer FC layers are left as they are)"),
    (np.float64, "float64: onnxruntime has no float64 Conv on CPU, so the rewritten layer could neither run nor "
                 "be verified there")])
def test_dtypes_without_a_conv_are_skipped(dtype, reason):
    assert skipped_reason(matmul_add_model([2, 4], 4, 3, dtype=dtype)) == reason


def test_bf16_below_opset_22_is_skipped():
    m = matmul_add_model([2, 4], 4, 3, opset=21)
    m.graph.initializer[0].CopyFrom(helper.make_tensor("W", TensorProto.BFLOAT16, [4, 3], [0] * 12))
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    assert skipped_reason(m) == "bfloat16: Conv has no bfloat16 before opset 22 (model is opset 21)"


def test_activation_times_activation_is_skipped():
    m = make_model([helper.make_node("Relu", ["A"], ["a"]), helper.make_node("Relu", ["B"], ["b"]),
                    helper.make_node("MatMul", ["a", "b"], ["Y"], name="qk")],
                   [vi("A", [2, 4]), vi("B", [4, 3])], [vi("Y", [2, 3])])
    assert skipped_reason(m).startswith("both operands are computed at run time")


def test_batched_weight_is_skipped():
    """A weight per group converts as a grouped Conv (tests/test_forms.py) when its groups are x's; here they are
    not (the weight broadcasts over x's batch of 2), and a 4-D weight is no FC layer at all."""
    m = make_model([helper.make_node("MatMul", ["X", "W"], ["Y"])], [vi("X", [2, 5, 4])], [vi("Y", [2, 5, 3])],
                   [init("W", rand((1, 4, 3)))])
    assert skipped_reason(m) == ("weight has shape [1, 4, 3] and activation 'X' [2, 5, 4]: a 3-D weight is a grouped "
                                 "layer only on [G, T, K] or [B, G, T, K] with the same static G")
    m = make_model([helper.make_node("MatMul", ["X", "W"], ["Y"])], [vi("X", [2, 2, 5, 4])], [vi("Y", [2, 2, 5, 3])],
                   [init("W", rand((2, 2, 4, 3)))])
    assert skipped_reason(m) == "weight has shape [2, 2, 4, 3]: only a 2-D weight is a fully connected layer"


def test_rank5_activation_is_skipped():
    m = matmul_add_model([1, 2, 2, 3, 4], 4, 3)
    assert skipped_reason(m) == "activation 'X' has rank 5: ranks 1 to 4 are laid out as images"


def test_unknown_rank_is_skipped():
    m = matmul_add_model([2, 4], 4, 3)
    m.graph.input[0].type.tensor_type.ClearField("shape")
    assert skipped_reason(m) == "rank of activation 'X' is unknown (shape inference could not derive it)"


def test_constant_left_operand_of_rank_3_is_skipped():
    """W @ x converts (tests/test_forms.py) for a 2-D W, and a 3-D W as a grouped layer on [.., G, K, T]
    (tests/test_grouped_left.py); broadcast over a 2-D x, it is not one."""
    m = make_model([helper.make_node("MatMul", ["W", "X"], ["Y"])], [vi("X", [4, 3])], [vi("Y", [5, 2, 3])],
                   [init("W", rand((5, 2, 4)))])
    assert skipped_reason(m) == ("the constant is the left operand with shape [5, 2, 4] and activation 'X' [4, 3]: a "
                                 "3-D W on the left is a grouped layer only on [G, K, T] or [B, G, K, T] with the "
                                 "same static G")


def test_add_that_is_not_a_per_channel_bias_stays():
    m = matmul_add_model([5, 4], 4, 3, bias_shape=(5, 3))
    x = rand((5, 4))
    new, report = convert(m)
    assert report.verified
    (c,) = report.converted
    assert c.fused_add is None
    assert c.notes == ["Add 'add' kept: its operand of shape [5, 3] is not a per-channel bias of the [..., 3] output"]
    assert ops(new).count("Add") == 1
    np.testing.assert_allclose(run(new, {"X": x})[0], run(m, {"X": x})[0], rtol=1e-6, atol=1e-6)


def test_gemm_with_runtime_bias_keeps_an_add_scaled_by_beta():
    b = rand((4, 3), seed=3)
    node = helper.make_node("Gemm", ["A", "B", "C"], ["Y"], name="g", beta=0.5)
    m = make_model([node], [vi("A", [2, 4]), vi("C", [2, 3])], [vi("Y", [2, 3])], [init("B", b)])
    new, report = convert(m)
    assert report.verified, report.text()
    assert report.converted[0].notes == ["bias 'C' is not a constant: kept as an Add after the Conv"]
    feed = {"A": rand((2, 4)), "C": rand((2, 3), seed=5)}
    np.testing.assert_allclose(run(new, feed)[0], run(m, feed)[0], rtol=1e-6, atol=1e-6)


def test_gemm_with_row_varying_bias_keeps_it_as_add():
    m = gemm_model(4, 5, 3, c_shape=(4, 1), beta=2.0)
    new, report = convert(m)
    assert report.verified
    assert report.converted[0].notes == ["bias 'C' of shape [4, 1] varies along the rows: kept as an Add after "
                                         "the Conv"]
    assert ops(new)[-1] == "Add"


def test_the_python_api_refuses_what_the_cli_refuses():
    """convert() validates as convert_file() does: a graph whose nodes are out of order is BadInput with the
    CLI's message (it returned "verified: True")."""
    from passes.fc_to_conv.errors import BadInput
    from builders import matmul_add_model
    m = matmul_add_model(["B", 8], 8, 4, bias_shape=[4])
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(reversed(nodes))
    with pytest.raises(BadInput, match=r"^<model>: nodes are out of order: Add node 'add' reads 'H' before MatMul node 'matmul' writes it$"):
        convert(m)
