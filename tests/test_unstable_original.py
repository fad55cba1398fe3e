"""An original that does not repeat itself (issue 25, case 4): onnxruntime-genai's Gemma2 gave another
`present.0.key` from run to run on the same inputs, and every layer was reverted. The original now runs twice on the
first input set (and, when something differs, on every set); an output is compared only on the values the original
repeats, the rest left out with the count on its line, never failed. A random op (RandomUniformLike, no seed) stands in
for the kernel that reads memory it did not write."""
import numpy as np
import onnx
from onnx import helper

from builders import init, make_model, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.options import Options
from passes.fc_to_conv.verify.unstable import repeated
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


def test_values_the_original_does_not_repeat_are_left_out_and_the_rest_compared():
    """Uniform noise on every value: all of `noisy` is left out, `y` is compared as always."""
    _, report = convert(_model(0.1), Options())
    assert report.verified and len(report.converted) == 1, report.text()
    checks = {o.name: o for o in report.verification.outputs}
    assert checks["y"].detail == "" and checks["y"].passed
    assert checks["noisy"].detail.startswith("left out: all 576 of its values differ between two runs")


def test_nan_that_come_and_go_leave_only_those_values_out():
    """Log(u - 0.5): NaN where u < 0.5, elsewhere a value; the values both runs agree on are compared."""
    model = _model(1.0, nan=True)
    verdict = _reference(model).compare(_another_draw(model), 1e-5, 1e-6)
    noisy = {o.name: o for o in verdict.outputs}["noisy"]
    assert "values left out: the original gives others at each run" in noisy.detail, noisy.line()


def test_nothing_left_to_compare_is_an_error_not_a_pass():
    _, report = convert(_model(1.0, stable_output=False), Options())
    assert not report.verified
    assert "the original gives other outputs from run to run" in report.verification.error


def test_a_wrong_value_where_the_original_repeats_itself_fails():
    """A rewrite that is wrong where the original is stable is caught: y + 1 on the stable output."""
    model = _model(0.1)
    wrong = onnx.ModelProto.FromString(model.SerializeToString())
    wrong.graph.initializer.append(init("one", np.float32(1.0)))
    add = helper.make_node("Add", ["y_raw", "one"], ["y"])
    for n in wrong.graph.node:
        n.input[:] = ["y_raw" if i == "y" else i for i in n.input]
        n.output[:] = ["y_raw" if o == "y" else o for o in n.output]
    wrong.graph.node.append(add)
    verdict = _reference(model).compare(_another_draw(wrong), 1e-5, 1e-6)
    assert not verdict.numerics_passed
    assert not {o.name: o for o in verdict.outputs}["y"].passed


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


def test_another_draw_of_noise_everywhere_passes_with_the_output_left_out():
    model = _model(0.1)
    verdict = _reference(model).compare(_another_draw(model), 1e-5, 1e-6)
    assert verdict.numerics_passed, verdict.failure()
    assert {o.name: o for o in verdict.outputs}["noisy"].detail.startswith("left out: all 512 of its values")


def test_repeated_finds_only_what_changed():
    a = [np.array([1.0, np.nan]), np.array([1, 2]), np.array([1.0, 2.0])]
    b = [np.array([1.0, np.nan]), np.array([1, 2]), np.array([1.0, 2.5])]
    found = repeated(["same", "ints", "moved"], a, b)
    assert list(found) == ["moved"] and found["moved"].tolist() == [True, False]
    assert repeated(["shape"], [np.zeros(2)], [np.zeros(3)]) == {"shape": None}
