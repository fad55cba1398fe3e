"""Kernel equal to the input: classifier heads become full-kernel Convs on the feature map, the Flatten goes;
and the chapter's two exercises (stride, padding) answered on onnxruntime."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import assert_conv_attributes, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert
from test_rewrite import assert_close, convert_and_compare


def head_model(c=3, h=4, w=5, hidden=16, out=10, flatten="Flatten", gap=False, chain=True):
    """[N, C, H, W] -> (GlobalAveragePool) -> Flatten|Reshape -> Gemm -> Relu -> Dropout -> Gemm"""
    k = c * (1 if gap else h * w)
    nodes, inits, x = [], [], "X"
    if gap:
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
        x = "pooled"
    if flatten == "Flatten":
        nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    else:
        inits.append(init("shape", np.array([0, -1], np.int64)))
        nodes.append(helper.make_node("Reshape", [x, "shape"], ["flat"]))
    inits += [init("w6", rand((hidden, k), seed=1)), init("b6", rand(hidden, seed=2)),
              init("w7", rand((out, hidden), seed=3)), init("b7", rand(out, seed=4))]
    nodes.append(helper.make_node("Gemm", ["flat", "w6", "b6"], ["fc6"], name="fc6", transB=1))
    last = "fc6"
    if chain:
        nodes += [helper.make_node("Relu", ["fc6"], ["r6"]), helper.make_node("Dropout", ["r6"], ["d6"]),
                  helper.make_node("Gemm", ["d6", "w7", "b7"], ["fc7"], name="fc7", transB=1)]
        last = "fc7"
    return make_model(nodes, [vi("X", ["n", c, h, w])], [vi(last, ["n", out if chain else hidden])], inits)


@pytest.mark.parametrize("flatten", ["Flatten", "Reshape"])
@pytest.mark.parametrize("gap", [False, True])
def test_head_becomes_full_kernel_conv(flatten, gap):
    m = head_model(flatten=flatten, gap=gap)
    new, report = convert_and_compare(m, [{"X": rand((2, 3, 4, 5))}, {"X": rand((1, 3, 4, 5), seed=3)}])
    fc6 = report.converted[0]
    assert fc6.kernel == ("1x1" if gap else "4x5") and fc6.conv_weight_shape == [16, 3] + ([1, 1] if gap else [4, 5])
    assert "Flatten" not in ops(new) and "Gemm" not in ops(new)
    # the whole chain stays [N, C, 1, 1]: one Reshape at the end (plus the removed Flatten's shape, if any)
    assert ops(new).count("Reshape") == 1 and "Transpose" not in ops(new)
    assert ops(new)[-1] == "Reshape"
    conv6 = next(n for n in new.graph.node if n.op_type == "Conv")
    assert conv6.input[0] == ("pooled" if gap else "X"), "the Conv reads the feature map itself"
    assert_conv_attributes(new)


def test_mode_1x1_makes_a_1x1_conv_of_the_flattened_features():
    """--mode 1x1: the head reads the flattened map as 60 channels (its Flatten may merge with the way in)."""
    m = head_model()
    new1, report1 = convert(m, Options(mode="1x1", verify=False))
    assert report1.converted[0].kernel == "1x1" and report1.converted[0].layout == "spatial"
    conv = next(n for n in new1.graph.node if n.op_type == "Conv")
    assert conv.input[0] != "X", "the Conv reads the flattened features, not the map"
    assert report1.converted[0].conv_weight_shape == [16, 60, 1, 1]
    x = rand((2, 3, 4, 5))
    assert_close(run(new1, {"X": x})[0], run(m, {"X": x})[0])


def test_flatten_read_elsewhere_stays():
    m = head_model(chain=False)
    m.graph.output.append(vi("flat", ["n", 60]))
    new, report = convert_and_compare(m, [{"X": rand((2, 3, 4, 5))}])
    assert report.converted[0].kernel == "4x5" and "Flatten" in ops(new)


def chapter_model():
    """Chapter 12: four inputs laid out as a 2x2 image, two outputs: y_i = sum_j w_ij x_j + b_i."""
    w = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], np.float32)
    b = np.array([0.5, -0.5], np.float32)
    nodes = [helper.make_node("Flatten", ["X"], ["x4"]), helper.make_node("Gemm", ["x4", "W", "b"], ["Y"], transB=1)]
    return make_model(nodes, [vi("X", ["n", 1, 2, 2])], [vi("Y", ["n", 2])], [init("W", w), init("b", b)]), w, b


def test_chapter_example_with_a_2x2_kernel():
    m, w, b = chapter_model()
    new, report = convert(m)
    assert report.verified and report.converted[0].kernel == "2x2"
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    kernel = onnx.numpy_helper.to_array(next(t for t in new.graph.initializer if t.name == conv.input[1]))
    np.testing.assert_array_equal(kernel[0, 0], [[1.0, 2.0], [3.0, 4.0]])  # W_1 = [[w11, w12], [w13, w14]]
    np.testing.assert_array_equal(kernel[1, 0], [[5.0, 6.0], [7.0, 8.0]])  # W_2
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    expected = w.astype(np.float64) @ np.array([1.0, 2.0, 3.0, 4.0]) + b
    np.testing.assert_allclose(run(new, {"X": x})[0][0], expected, rtol=0, atol=1e-5)


def _set_conv(model, **attrs):
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for k, v in attrs.items():
        conv.attribute.append(helper.make_attribute(k, v))
    return model


def test_exercise_stride_does_not_matter_when_the_kernel_covers_the_input():
    """12-1, kernel = input: there is one position, so any stride gives it; the output is unchanged."""
    m, _, _ = chapter_model()
    new, _ = convert(m, Options(verify=False))
    x = rand((3, 1, 2, 2))
    for stride in (2, 5):
        strided = _set_conv(onnx.ModelProto.FromString(new.SerializeToString()), strides=[stride, stride])
        assert_close(run(strided, {"X": x})[0], run(m, {"X": x})[0])


def test_exercise_stride_breaks_the_1x1_equivalence():
    """12-1, kernel 1x1: rows are pixels, so a stride of 2 skips every other row; no longer the FC layer."""
    m, _, _ = chapter_model()
    x = rand((1, 4, 1, 6))  # six rows of four features as a [1, K, 1, M] image
    w = onnx.numpy_helper.to_array(m.graph.initializer[0]).reshape(2, 4, 1, 1)
    conv = lambda **kw: make_model([helper.make_node("Conv", ["X", "W"], ["Y"], **kw)], [vi("X", [1, 4, 1, 6])],
                                   [vi("Y", None)], [init("W", w)])
    full = run(conv(), {"X": x})[0]
    strided = run(conv(strides=[1, 2]), {"X": x})[0]
    assert full.shape == (1, 2, 1, 6) and strided.shape == (1, 2, 1, 3)
    assert_close(strided, full[..., ::2])  # only rows 0, 2, 4 survive


def test_exercise_padding_breaks_the_equivalence():
    """12-2: padding adds positions where the kernel overlaps zeros: the output grows past the FC's outputs; only
    the unpadded (centre) position still equals the FC, and 1x1 padding adds rows that are only the bias."""
    m, w, b = chapter_model()
    new, _ = convert(m, Options(verify=False))
    x = rand((1, 1, 2, 2))
    padded = _set_conv(onnx.ModelProto.FromString(new.SerializeToString()), pads=[1, 1, 1, 1])
    head = next(n for n in padded.graph.node if n.op_type == "Conv")
    padded.graph.output[0].CopyFrom(vi(head.output[0], None))
    del padded.graph.node[[n.op_type for n in padded.graph.node].index("Conv") + 1:]
    out = run(padded, {"X": x})[0]
    assert out.shape == (1, 2, 3, 3)
    assert_close(out[0, :, 1, 1], run(m, {"X": x})[0][0])
    assert not np.allclose(out[0, :, 0, 0], out[0, :, 1, 1])


def test_row_bias_after_a_head_leaves_the_head_layout():
    """fc6 is a full-kernel head ([N, C, 1, 1] images); fc7 reads them and has a [N, 1] bias, so its result leaves
    the layout at once: the way out must be the head's, not the default layout's."""
    nodes = [helper.make_node("Flatten", ["X"], ["f"]), helper.make_node("Gemm", ["f", "w6"], ["h"], transB=1, name="fc6"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w7", "c7"], ["Y"], transB=1, name="fc7")]
    m = make_model(nodes, [vi("X", [2, 3, 2, 2])], [vi("Y", [2, 5])],
                   [init("w6", rand((8, 12))), init("w7", rand((5, 8), seed=2)), init("c7", rand((2, 1), seed=3))])
    new, report = convert(m)
    assert report.verified and not report.reverted, report.text()
    assert [c.kernel for c in report.converted] == ["2x2", "1x1"]
