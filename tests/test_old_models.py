"""IR version 3 models of the opset 7 to 9 era (every initializer listed as an input), older Reshape forms, and
weights that older exporters compute (ConstantOfShape, Constant nodes, Mul by a constant)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import assert_converted, gemm_model, init, make_model, matmul_add_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from test_rewrite import assert_close


def ir3(model):
    model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                             for t in model.graph.initializer)
    return model


@pytest.mark.parametrize("opset", [7, 8, 9])
def test_ir3_models_convert_and_keep_their_versions(opset):
    for m, feed, name in [
            (ir3(matmul_add_model(["n", 4], 4, 3, (3,), opset=opset, ir=3)), {"X": rand((2, 4))}, "matmul"),
            (ir3(gemm_model(2, 4, 3, trans_b=1, c_shape=(3,), opset=opset, ir=3)), {"A": rand((2, 4))}, "gemm")]:
        new, report = convert(m)
        assert_converted(report, [name])
        assert (new.ir_version, new.opset_import[0].version) == (3, opset)
        assert {t.name for t in new.graph.initializer} <= {i.name for i in new.graph.input}
        assert_close(run(new, feed)[0], run(m, feed)[0])


def test_reshape_takes_an_attribute_before_opset_5():
    m = ir3(matmul_add_model(["n", 4], 4, 3, (3,), opset=4, ir=3))
    new, report = convert(m)
    reshapes = [n for n in new.graph.node if n.op_type == "Reshape"]
    assert reshapes and all(len(n.input) == 1 and n.attribute[0].name == "shape" for n in reshapes)
    assert str(report.verification.checker) == "PASSED"
    # onnxruntime runs opset 7 and later only: the report says why this one could not be verified
    assert report.verification.error.startswith("the original model does not load in onnxruntime")
    assert not report.verified


def test_constant_of_shape_weight():
    """W = ConstantOfShape([4, 3], 0.25) * Transpose(Constant) : folded through three ops."""
    nodes = [helper.make_node("Constant", [], ["shape"], value=init("v", np.array([4, 3], np.int64))),
             helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25])),
             helper.make_node("Constant", [], ["wt"], value=init("w", rand((3, 4)))),
             helper.make_node("Transpose", ["wt"], ["w_kn"], perm=[1, 0]),
             helper.make_node("Mul", ["w_kn", "ones"], ["W"]),
             helper.make_node("MatMul", ["X", "W"], ["Y"], name="fc")]
    m = make_model(nodes, [vi("X", ["n", 4])], [vi("Y", ["n", 3])])
    new, report = convert(m)
    assert report.verified and [c.name for c in report.converted] == ["fc"]
    assert ops(new) == ["Reshape", "Transpose", "Conv", "Transpose", "Reshape"], "the weight's subgraph is gone"


def test_weight_computed_from_an_input_is_not_folded():
    nodes = [helper.make_node("Mul", ["W0", "scale"], ["W"]), helper.make_node("MatMul", ["X", "W"], ["Y"])]
    m = make_model(nodes, [vi("X", ["n", 4]), vi("scale", [])], [vi("Y", ["n", 3])], [init("W0", rand((4, 3)))])
    _, report = convert(m, Options(verify=False))
    assert report.skipped[0].reason == "weight is not a constant: 'W' is computed from run-time values by Mul"


def test_batch_layout_before_opset_10_slices_with_attributes():
    """The batch layout's way out of [B, T, K] with two dynamic dims reads them with Shape -> Slice -> Concat;
    before opset 10 Slice takes starts and ends as attributes."""
    m = matmul_add_model(["b", "t", 4], 4, 3, (3,), opset=9)
    new, report = convert(m, Options(layout="batch"))
    assert_converted(report, ["matmul"])
    slices = [n for n in new.graph.node if n.op_type == "Slice"]
    assert len(slices) == 1 and len(slices[0].input) == 1
    assert {a.name: list(a.ints) for a in slices[0].attribute} == {"axes": [0], "starts": [0], "ends": [2]}
    feed = {"X": rand((2, 5, 4))}
    assert_close(run(new, feed)[0], run(m, feed)[0])
