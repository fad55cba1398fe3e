"""Each FC pattern becomes a Conv and computes the same function on onnxruntime.

Tolerance: the rewritten layer runs a different kernel; measured norm_err (max_abs / max|ref|) of correct
rewrites is below 1e-6 in fp32 and 5e-4 in fp16 (scripts/calibrate_tolerances.py), so these tests allow
1e-5 and 5e-3 of the output's magnitude.
"""
import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import assert_conv_attributes, gemm_model, init, make_model, matmul_add_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert

NO_VERIFY = Options(verify=False)


def assert_close(got, ref, rel=1e-5):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= rel * max(np.max(np.abs(ref)), 1e-6)


def convert_and_compare(model, feeds, layout="spatial", rel=1e-5):
    new, report = convert(model, Options(layout=layout, verify=False))
    onnx.checker.check_model(new, full_check=True)
    assert_conv_attributes(new)
    for feed in feeds:
        for got, ref in zip(run(new, feed), run(model, feed)):
            assert_close(got, ref, rel)
    return new, report


@pytest.mark.parametrize("layout", ["spatial", "batch"])
@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape", list(itertools.product(
    [0, 1], [0, 1], [1.0, 0.5], [1.0, 3.0], [None, (), (1,), (6,), (1, 6), (1, 1), (4, 1), (4, 6)])))
def test_gemm(layout, trans_a, trans_b, alpha, beta, c_shape):
    m = gemm_model(4, 5, 6, trans_a, trans_b, alpha, beta, c_shape)
    new, report = convert_and_compare(m, [{"A": rand((5, 4) if trans_a else (4, 5))}], layout)
    assert "Gemm" not in ops(new) and ops(new).count("Conv") == 1
    assert len(report.converted) == 1 and not report.skipped


RANKS = [((7,), [7]), ((3, 7), ["m", 7]), ((2, 3, 7), ["batch", "seq", 7]), ((2, 2, 3, 7), ["b", "h", "t", 7])]
BIASES = [(None, False), ((5,), False), ((5,), True), ((1, 5), False)]


@pytest.mark.parametrize("layout", ["spatial", "batch"])
@pytest.mark.parametrize("shape,dims,bias_shape,bias_first", [
    (s, d, b, f) for s, d in RANKS for b, f in BIASES
    if b is None or len(b) <= len(s)])  # a [1, N] bias on a rank-1 output would change its rank: not a bias
def test_matmul_ranks_dynamic_dims(layout, shape, dims, bias_shape, bias_first):
    m = matmul_add_model(dims, 7, 5, bias_shape, bias_first=bias_first)
    other = tuple(d + 2 for d in shape[:-1]) + (7,)  # a second size for every dynamic dim
    new, report = convert_and_compare(m, [{"X": rand(shape)}, {"X": rand(other, seed=2)}], layout)
    assert ops(new).count("Conv") == 1 and "MatMul" not in ops(new)
    assert ("Add" in ops(new)) is False
    assert report.converted[0].fused_add == ("add" if bias_shape else None)


def test_spatial_layout_node_counts():
    """rank 2 and 3: Reshape + Transpose(0,3,1,2) in, Transpose(0,2,3,1) + Reshape out (4-D Transposes next to
    the Conv, which onnxruntime folds into its NCHWc reorders: test_ways_fold_into_onnxruntimes_reorders);
    rank 4: one Transpose each way; M == 1: Reshapes."""
    rows = ["Reshape", "Transpose", "Conv", "Transpose", "Reshape"]
    for dims, expected in [(["m", 8], rows), ([1, 8], ["Reshape", "Conv", "Reshape"]), (["b", "t", 8], rows),
                           (["b", "h", "t", 8], ["Transpose", "Conv", "Transpose"])]:
        new, _ = convert(matmul_add_model(dims, 8, 4, (4,)), NO_VERIFY)
        assert ops(new) == expected, dims
        perms = [onnx.helper.get_attribute_value(n.attribute[0]) for n in new.graph.node if n.op_type == "Transpose"]
        assert perms in ([], [[0, 3, 1, 2], [0, 2, 3, 1]]), dims


@pytest.mark.parametrize("dims", [["m", 64], ["b", "t", 64]])
def test_ways_fold_into_onnxruntimes_reorders(dims, tmp_path):
    """Why the ways in and out are Reshape -> Transpose(0,3,1,2) and Transpose(0,2,3,1) -> Reshape: onnxruntime's
    NCHWc transformer (default optimizations, x86) folds a 4-D Transpose next to the Conv into its own
    ReorderInput/ReorderOutput (channels_last=1), even with dynamic rows; the earlier [B,T,K] -> Transpose(0,2,1)
    -> Reshape form left both Transposes running (a 64 -> 256 layer over 128 tokens, 1 thread: 32.2 us, now 26.8 us
    against the MatMul's 26.2 us). The optimized graph onnxruntime writes has no Transpose left."""
    import onnxruntime as ort
    m = matmul_add_model(dims, 64, 64, (64,))
    new, report = convert(m)
    assert report.verified and ops(new).count("Transpose") == 2
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(new.SerializeToString(), so, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "opt.onnx"))
    if not any(n.domain == "com.microsoft.nchwc" for n in optimized.graph.node):
        pytest.skip("onnxruntime's NCHWc kernels are not used on this CPU")
    reorders = {n.op_type: helper.get_attribute_value(next(a for a in n.attribute if a.name == "channels_last"))
                for n in optimized.graph.node if n.op_type in ("ReorderInput", "ReorderOutput")}
    assert reorders == {"ReorderInput": 1, "ReorderOutput": 1}
    assert "Transpose" not in ops(optimized), ops(optimized)


def test_no_concrete_batch_in_reshapes():
    """Reshape shapes use 0 and -1 for the rows, never the size seen in the model's declared shape (8 and 4 are
    the channels)."""
    new, _ = convert(matmul_add_model([3, 5, 8], 8, 4, (4,)), NO_VERIFY)
    shapes = [onnx.numpy_helper.to_array(t).tolist() for t in new.graph.initializer if t.name.startswith("fc2conv")]
    assert shapes == [[0, 1, -1, 8], [0, -1, 4]]


@pytest.mark.parametrize("layout", ["spatial", "batch"])
def test_fp16(layout):
    m = matmul_add_model(["b", "t", 16], 16, 8, (8,), dtype=np.float16)
    new, report = convert_and_compare(m, [{"X": rand((2, 3, 16), np.float16)}], layout, rel=5e-3)
    w = next(t for t in new.graph.initializer if t.name == "W_conv")
    assert w.data_type == TensorProto.FLOAT16 and report.converted[0].dtype == "float16"


def test_shared_weight_is_folded_once_per_transform():
    """Two MatMuls share W; a Gemm with transB=1 reads it as [N, K]; a Relu reads it as a tensor."""
    w = rand((6, 6), seed=4)
    nodes = [helper.make_node("MatMul", ["X", "W"], ["a"], name="mm1"),
             helper.make_node("MatMul", ["a", "W"], ["b"], name="mm2"),
             helper.make_node("Gemm", ["b", "W"], ["c"], name="gemm_t", transB=1),
             helper.make_node("Gemm", ["c", "W"], ["d"], name="gemm_alpha", alpha=2.0),
             helper.make_node("Relu", ["W"], ["w_out"], name="uses_w")]
    m = make_model(nodes, [vi("X", ["n", 6])], [vi("d", ["n", 6]), vi("w_out", [6, 6])], [init("W", w)])
    new, report = convert_and_compare(m, [{"X": rand((3, 6))}])
    assert len(report.converted) == 4
    conv_weights = {n.input[1] for n in new.graph.node if n.op_type == "Conv"}
    assert len(conv_weights) == 3  # W^T, W (transB), 2*W^T
    original = next(t for t in new.graph.initializer if t.name == "W")
    assert np.array_equal(onnx.numpy_helper.to_array(original), w), "the Relu's W must stay untouched"


def test_unshared_weight_is_removed():
    new, _ = convert(matmul_add_model([2, 4], 4, 3, (3,)), NO_VERIFY)
    names = {t.name for t in new.graph.initializer}
    assert "W" not in names and "bias" not in names


@pytest.mark.parametrize("producer", ["Constant", "Transpose", "Cast", "Identity", "Mul"])
def test_weights_that_reach_the_layer_through_constant_ops(producer):
    w = rand((4, 3), seed=6)
    if producer == "Constant":
        nodes, inits = [helper.make_node("Constant", [], ["Wc"], value=init("v", w))], []
    elif producer == "Transpose":
        nodes, inits = [helper.make_node("Transpose", ["W0"], ["Wc"], perm=[1, 0])], [init("W0", w.T.copy())]
    elif producer == "Cast":
        nodes, inits = [helper.make_node("Cast", ["W0"], ["Wc"], to=TensorProto.FLOAT)], [init("W0", w.astype(np.float16))]
    elif producer == "Identity":
        nodes, inits = [helper.make_node("Identity", ["W0"], ["Wc"])], [init("W0", w)]
    else:
        nodes, inits = [helper.make_node("Mul", ["W0", "s"], ["Wc"])], [init("W0", w), init("s", np.float32(0.5))]
    m = make_model(nodes + [helper.make_node("MatMul", ["X", "Wc"], ["Y"], name="fc")], [vi("X", ["n", 4])],
                   [vi("Y", ["n", 3])], inits)
    new, report = convert_and_compare(m, [{"X": rand((5, 4))}])
    assert [c.name for c in report.converted] == ["fc"]
    assert ops(new) == ["Reshape", "Transpose", "Conv", "Transpose", "Reshape"], "dead weight producers removed"
    assert not {"W0", "s"} & {t.name for t in new.graph.initializer}


def test_output_name_and_readers_stay_wired():
    nodes = [helper.make_node("MatMul", ["X", "W"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "b"], ["hb"], name="bias"),
             helper.make_node("Relu", ["hb"], ["Y"], name="relu")]
    m = make_model(nodes, [vi("X", ["n", 4])], [vi("Y", ["n", 3])], [init("W", rand((4, 3))), init("b", rand(3))])
    new, _ = convert_and_compare(m, [{"X": rand((2, 4))}])
    relu = next(n for n in new.graph.node if n.op_type == "Relu")
    assert list(relu.input) == ["hb"] and any("hb" in n.output for n in new.graph.node)


def test_shared_bias_is_folded_once():
    """Two Gemms share W and C with the same beta: one Conv weight and one Conv bias; a third, with another beta,
    gets its own bias."""
    nodes = [helper.make_node("Gemm", ["X", "W", "C"], ["a"], name="g1", transB=1),
             helper.make_node("Gemm", ["X", "W", "C"], ["b"], name="g2", transB=1),
             helper.make_node("Gemm", ["X", "W", "C"], ["c"], name="g3", transB=1, beta=2.0)]
    m = make_model(nodes, [vi("X", ["n", 6])], [vi(o, ["n", 6]) for o in "abc"],
                   [init("W", rand((6, 6), seed=1)), init("C", rand(6, seed=2))])
    new, report = convert_and_compare(m, [{"X": rand((3, 6))}])
    assert len(report.converted) == 3
    convs = [n for n in new.graph.node if n.op_type == "Conv"]
    assert len({c.input[1] for c in convs}) == 1 and len({c.input[2] for c in convs}) == 2
