"""An original that does not repeat itself (issue 25, case 4): onnxruntime-genai's Gemma2 gave another
`present.0.key` from run to run on the same inputs, and every layer was reverted. The original now runs twice on the
first input set; an output that differs between its own runs is compared within twice that difference, or, when
its NaN/Inf come and go, left out with the reason, never failed. A random op (RandomUniformLike, no seed) stands in
for the kernel that reads memory it did not write."""
import numpy as np
import onnx
from onnx import helper

from builders import init, make_model, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.options import Options
from passes.fc_to_conv.verify.compare import OutputCheck, own_differences, within_own_difference
from passes.fc_to_conv.verify.verdict import Reference

K, N = 16, 64
rng = np.random.default_rng(3)
W = rng.standard_normal((K, N)).astype(np.float32)


def _model(noise_scale: float, nan: bool = False, stable_output: bool = True) -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc"),
             helper.make_node("RandomUniformLike", ["y"], ["u"]),
             helper.make_node("Mul", ["u", "scale"], ["noise"])]
    if nan:   # Log of (u - 0.5): NaN where u < 0.5, at other places in every run
        nodes += [helper.make_node("Sub", ["u", "half"], ["centred"]), helper.make_node("Log", ["centred"], ["log"]),
                  helper.make_node("Add", ["y", "log"], ["noisy"])]
    else:
        nodes.append(helper.make_node("Add", ["y", "noise"], ["noisy"]))
    outputs = ([vi("y", ["b", N])] if stable_output else []) + [vi("noisy", ["b", N])]
    return make_model(nodes, [vi("x", ["b", K])], outputs,
                      [init("W", W), init("scale", np.float32(noise_scale)), init("half", np.float32(0.5))])


def test_an_output_the_original_does_not_repeat_is_compared_within_its_own_difference():
    _, report = convert(_model(0.1), Options())
    assert report.verified and len(report.converted) == 1, report.text()
    checks = {o.name: o for o in report.verification.outputs}
    assert checks["y"].detail == ""                       # the stable output is compared as always
    assert "the original differs from itself by max_abs=" in checks["noisy"].detail


def test_nan_that_come_and_go_leave_the_output_out_with_the_reason():
    _, report = convert(_model(1.0, nan=True), Options())
    assert report.verified and len(report.converted) == 1, report.text()
    checks = {o.name: o for o in report.verification.outputs}
    assert checks["noisy"].detail.startswith("left out: the original does not repeat this output")
    assert checks["y"].passed and not checks["y"].detail


def test_nothing_left_to_compare_is_an_error_not_a_pass():
    _, report = convert(_model(1.0, nan=True, stable_output=False), Options())
    assert not report.verified
    assert "the original gives other outputs from run to run" in report.verification.error


def _another_draw(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with its random op seeded: a rewrite whose noise is another draw than the original's (two
    unseeded sessions of onnxruntime happen to draw alike on their first run, so convert() alone would not show it)."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    node = next(n for n in copy.graph.node if n.op_type == "RandomUniformLike")
    node.attribute.append(helper.make_attribute("seed", 5.0))
    return copy


def _reference(model):
    feeds = [{"x": rng.standard_normal((4, K)).astype(np.float32)} for _ in range(2)]
    return Reference(model, [o.name for o in model.graph.output], feeds)


def test_another_draw_of_the_noise_passes_within_the_originals_own_difference():
    model = _model(0.1)
    verdict = _reference(model).compare(_another_draw(model), 1e-5, 1e-6)
    assert verdict.numerics_passed, verdict.failure()
    noisy = {o.name: o for o in verdict.outputs}["noisy"]
    assert 0.05 < noisy.max_abs <= 0.1 and "within 2x that" in noisy.detail


def test_nan_that_come_and_go_in_another_draw_are_left_out():
    model = _model(1.0, nan=True)
    verdict = _reference(model).compare(_another_draw(model), 1e-5, 1e-6)
    assert verdict.numerics_passed, verdict.failure()
    assert {o.name: o for o in verdict.outputs}["noisy"].detail.startswith("left out")


def test_a_wrong_value_is_not_hidden_by_the_noise():
    """Within twice the original's own difference, not anything: a difference far over it still fails."""
    check = OutputCheck("noisy", max_abs=0.5, norm_err=0.1, passed=False)
    assert not within_own_difference(check, 0.01).passed
    assert within_own_difference(OutputCheck("noisy", max_abs=0.015, passed=False), 0.01).passed


def test_own_differences_finds_only_what_changed():
    a = [np.array([1.0, np.nan]), np.array([1, 2]), np.array([1.0, 2.0])]
    b = [np.array([1.0, np.nan]), np.array([1, 2]), np.array([1.0, 2.5])]
    assert own_differences(["same", "ints", "moved"], a, b) == {"moved": 0.5}
    assert own_differences(["nan"], [np.array([np.nan, 1.0])], [np.array([1.0, np.nan])]) == {"nan": float("inf")}
