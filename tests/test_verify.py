"""Verification catches wrong rewrites, passes right ones, and handles NaN/Inf, shapes and integer outputs."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import assert_converted, init, make_model, matmul_add_model, rand, vi
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify.compare import TOLERANCES, compare_output

RTOL, ATOL = TOLERANCES["float32"]


def test_identical_outputs_pass():
    r = rand((3, 4))
    c = compare_output("y", r, r.copy(), RTOL, ATOL)
    assert c.passed and c.max_abs == 0 and c.norm_err == 0 and c.cosine == pytest.approx(1.0)


def test_kernel_noise_passes_and_a_dropped_bias_fails():
    ref = rand((64, 768)) * 20
    noise = ref + rand((64, 768), seed=2) * 1e-6 * np.abs(ref).max()  # the order of Gemm-vs-Conv differences
    assert compare_output("y", ref, noise.astype(np.float32), RTOL, ATOL).passed
    biased = ref - 0.01  # a bias of 0.01 dropped from outputs of magnitude ~80
    c = compare_output("y", ref, biased.astype(np.float32), RTOL, ATOL)
    assert not c.passed and c.norm_err > 1e-4
    assert c.line().startswith("FAILED | output 'y' | max_abs=0.01")


def test_same_nan_and_inf_are_not_a_mismatch():
    ref = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    c = compare_output("y", ref, ref.copy(), RTOL, ATOL)
    assert c.passed and c.nonfinite == 3
    assert "3 NaN/Inf equal in both" in c.line()


def test_nan_in_one_model_only_fails():
    ref = np.array([1.0, 2.0, np.inf], np.float32)
    got = np.array([1.0, np.nan, -np.inf], np.float32)
    c = compare_output("y", ref, got, RTOL, ATOL)
    assert not c.passed and c.detail == "2 values are NaN/Inf in one model only"


def test_shape_mismatch_fails():
    c = compare_output("y", rand((2, 3)), rand((3, 2)), RTOL, ATOL)
    assert not c.passed and "shape/dtype [3, 2] float32 instead of [2, 3] float32" == c.detail


def test_integer_outputs_must_match_exactly():
    a = np.array([1, 2, 3])
    assert compare_output("i", a, a.copy(), RTOL, ATOL).passed
    c = compare_output("i", a, np.array([1, 2, 4]), RTOL, ATOL)
    assert not c.passed and c.detail == "1 of 3 values differ"


def test_statistics_accumulate_over_input_sets():
    ref = rand((10,))
    c = compare_output("y", ref, ref + 1e-7, RTOL, ATOL)
    c = compare_output("y", ref, ref + 1e-3, RTOL, ATOL, c)
    assert c.max_abs == pytest.approx(1e-3, rel=1e-3) and not c.passed


def test_original_that_cannot_run_on_generated_inputs_is_reported():
    """A Reshape to a fixed size breaks when the generated batch differs: the message says how to fix it."""
    nodes = [helper.make_node("Reshape", ["X", "s"], ["r"]), helper.make_node("MatMul", ["r", "W"], ["Y"])]
    m = make_model(nodes, [vi("X", ["n", 4])], [vi("Y", [2, 3])],
                   [init("s", np.array([2, 4], np.int64)), init("W", rand((4, 3)))])
    _, report = convert(m)
    assert not report.verified
    assert report.verification.error.startswith("the original model fails on every input tried (X [2, 4] / [3, 4] / "
                                                "[4, 4]; X [1, 4]; ")
    assert report.verification.error.endswith("give real shapes with --input-shape NAME:DxD or data with --inputs "
                                              "FILE.npz")
    _, report = convert(m, Options(input_shapes={"X": [2, 4]}))
    assert_converted(report, [report.converted[0].name] if report.converted else ["<the MatMul>"])


def test_fp16_layers_get_fp16_tolerances():
    _, report = convert(matmul_add_model(["n", 32], 32, 16, (16,), dtype=np.float16))
    assert_converted(report, ["matmul"])
    assert (report.verification.rtol, report.verification.atol) == TOLERANCES["float16"]
    _, report = convert(matmul_add_model(["n", 32], 32, 16, (16,)), Options(rtol=1e-3, atol=0))
    assert (report.verification.rtol, report.verification.atol) == (1e-3, 0)


def test_an_fp32_rewrite_off_by_1e_4_is_reverted_with_the_fp32_tolerance(monkeypatch):
    """A Conv weight off by a relative 1e-4 fails fp32's rtol (1e-5) and would pass fp16's (5e-3): an fp32 model is
    checked with fp32's tolerance, so the layer is reverted and the report names that tolerance."""
    from passes.fc_to_conv.rules import fold
    real = fold.conv_weight
    monkeypatch.setattr(fold, "conv_weight", lambda *a, **k: (real(*a, **k) * (1 + 1e-4)).astype(np.float32))
    _, report = convert(matmul_add_model(["B", 64], 64, 32, bias_shape=[32]))
    assert [r.name for r in report.reverted] == ["matmul"], report.text()
    assert not report.converted
    assert (report.verification.rtol, report.verification.atol) == (RTOL, ATOL)


def test_a_sequence_of_maps_is_compared_within_the_tolerance():
    """A ZipMap's output (a list of {label: probability}) differs by 1.2e-7 in one value after a correct rewrite:
    it passes, as the same tensor would (it went through the exact comparison meant for integers and failed with
    'max_abs=0 norm_err=0 (1 of 1 values differ)')."""
    from passes.fc_to_conv.verify.compare import compare_value
    ref = [{0: np.float32(0.25), 1: np.float32(0.75)}, {0: np.float32(0.5), 1: np.float32(0.5)}]
    got = [{0: np.float32(0.25 + 1.2e-7), 1: np.float32(0.75)}, {0: np.float32(0.5), 1: np.float32(0.5)}]
    check = compare_value("output_probability", ref, got, RTOL, ATOL)
    assert check.passed and 1e-7 < check.max_abs < 2e-7, check.line()
    far = [{0: np.float32(0.35), 1: np.float32(0.75)}, {0: np.float32(0.5), 1: np.float32(0.5)}]
    check = compare_value("output_probability", ref, far, RTOL, ATOL)
    assert not check.passed and abs(check.max_abs - 0.1) < 1e-6, check.line()


def test_a_sequence_whose_structure_differs_fails_with_both_structures():
    from passes.fc_to_conv.verify.compare import compare_value
    ref = [{0: np.float32(1), 1: np.float32(2)}]
    check = compare_value("out", ref, [{0: np.float32(1), 2: np.float32(2)}], RTOL, ATOL)
    assert not check.passed and check.detail == "structure [{0: [], 2: []}] instead of [{0: [], 1: []}]"
    check = compare_value("out", ref, ref + ref, RTOL, ATOL)
    assert not check.passed and check.detail.startswith("structure [{0: [], 1: []}, {0: [], 1: []}] instead of")


def test_an_integer_output_that_differs_reports_how_far():
    check = compare_output("ids", np.array([1, 5, 7]), np.array([1, 9, 7]), RTOL, ATOL)
    assert not check.passed and check.max_abs == 4 and check.detail == "1 of 3 values differ", check.line()


def test_a_zipmap_classifier_converts_and_verifies():
    """scikit-learn's MLPClassifier exported by skl2onnx ends in Softmax -> ZipMap: its layers convert and the
    sequence of maps verifies."""
    w = init("w", rand((8, 3), seed=3))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"], name="fc"),
             helper.make_node("Softmax", ["logits"], ["p"], axis=1),
             helper.make_node("ZipMap", ["p"], ["probs"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2])]
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(
        onnx.TensorProto.INT64, helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [])))
    m = make_model(nodes, [vi("x", ["B", 8])], [helper.make_value_info("probs", seq)], [w])
    m.opset_import.append(helper.make_opsetid("ai.onnx.ml", 1))
    _, report = convert(m)
    assert_converted(report, ["fc"])
    assert report.verification.outputs[0].name == "probs" and report.verification.outputs[0].passed
