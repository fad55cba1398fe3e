"""--target qnn writes onnxruntime's fused skip norms (com.microsoft SkipSimplifiedLayerNormalization and
SkipLayerNormalization) as their Add and norm (rewrite/skip_norms.py), which Qualcomm's HTP runs where the fused
ops fall to the CPU (issue 25, case 9). Each written model is compared with a float64 numpy reference of the
original's function (fp32 over K <= 24 terms and one norm: 1e-5 relative is ample; measured about 2e-7), and on
the QNN HTP emulator, when installed, the fused op's CPU node is gone."""
import numpy as np
import onnx
import pytest
from onnx import helper

import qnn_htp
from builders import init, make_model, run, vi
from passes.fc_to_conv import Options, convert, convert_file
from test_runtime_ops import E, H, _rms, genai_mlp

needs_qnn = pytest.mark.skipif(not qnn_htp.available(), reason="onnxruntime-qnn is not installed (the qnn extra)")


def _feed():
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 5, E)).astype(np.float32),
            "skip": rng.standard_normal((2, 5, H)).astype(np.float32)}


def _weights(model):
    return {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}


def _ops(model):
    return sorted((n.domain, n.op_type) for n in model.graph.node)


def test_genai_skip_norm_becomes_add_and_simplified_norm_for_qnn():
    model = genai_mlp()
    out, report = convert(model, Options(target="qnn"))
    assert report.verified and len(report.converted) == 2, report.text()
    ops = _ops(out)
    assert ("com.microsoft", "SkipSimplifiedLayerNormalization") not in ops
    assert ops.count(("", "SimplifiedLayerNormalization")) == 2 and ("", "Add") in ops
    assert "not clean, as the original is not" in str(report.verification.checker)   # onnx knows no SLN, either
    g, feed = _weights(model), _feed()
    s = _rms(feed["x"].astype(np.float64), g["g1"]) @ g["W1"] + feed["skip"]
    y, total = run(out, feed)
    np.testing.assert_allclose(total, s, rtol=1e-5, atol=1e-5)   # the residual sum, output 3, by its name
    np.testing.assert_allclose(y, _rms(s, g["g2"]) @ g["W2"], rtol=1e-5, atol=1e-5)
    default, _ = convert(model)
    assert ("com.microsoft", "SkipSimplifiedLayerNormalization") in _ops(default)   # no other target's model


def test_at_opset_23_the_simplified_norm_is_rms_normalization():
    model = genai_mlp()
    model.graph.node[0].op_type = "RMSNormalization"   # no default-domain SLN left: the checker passes
    del model.graph.node[0].attribute[:]
    model.graph.node[0].attribute.extend([helper.make_attribute("epsilon", 1e-6)])
    model.opset_import[0].version = 23
    out, report = convert(model, Options(target="qnn"))
    assert report.verified and str(report.verification.checker) == "PASSED", report.text()
    assert ("", "RMSNormalization") in _ops(out) and ("", "SimplifiedLayerNormalization") not in _ops(out)
    g, feed = _weights(model), _feed()
    s = _rms(feed["x"].astype(np.float64), g["g1"]) @ g["W1"] + feed["skip"]
    np.testing.assert_allclose(run(out, feed)[0], _rms(s, g["g2"]) @ g["W2"], rtol=1e-5, atol=1e-5)


def skip_layer_norm(opset: int = 17, mean_read: bool = False):
    """x [B, T, E] -> fc -> SkipLayerNormalization(h, skip, gamma, beta, bias) -> fc2; output 3 unread."""
    rng = np.random.default_rng(5)
    f = np.float32
    outs = ["n", "mean" if mean_read else ""]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
             helper.make_node("SkipLayerNormalization", ["h", "skip", "gamma", "beta", "bias"], outs, name="sln",
                              domain="com.microsoft", epsilon=1e-5),
             helper.make_node("MatMul", ["n", "W2"], ["y"], name="fc2")]
    inits = [init("W1", (rng.standard_normal((E, H)) * 0.2).astype(f)), init("gamma", (rng.random(H) + .5).astype(f)),
             init("beta", (rng.standard_normal(H) * .1).astype(f)), init("bias", (rng.standard_normal(H) * .1).astype(f)),
             init("W2", (rng.standard_normal((H, E)) * 0.2).astype(f))]
    m = make_model(nodes, [vi("x", ["batch", "seq", E]), vi("skip", ["batch", "seq", H])],
                   [vi("y", ["batch", "seq", E])] + ([vi("mean", ["batch", "seq", 1])] if mean_read else []), inits, opset=opset)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


def test_skip_layer_norm_with_bias_becomes_two_adds_and_layer_normalization():
    model = skip_layer_norm()
    out, report = convert(model, Options(target="qnn"))
    assert report.verified and str(report.verification.checker) == "PASSED", report.text()
    assert _ops(out).count(("", "Add")) == 2 and ("", "LayerNormalization") in _ops(out)
    assert ("com.microsoft", "SkipLayerNormalization") not in _ops(out)
    g, feed = _weights(model), _feed()
    s = feed["x"].astype(np.float64) @ g["W1"] + feed["skip"] + g["bias"]
    mu, var = s.mean(-1, keepdims=True), s.var(-1, keepdims=True)
    want = ((s - mu) / np.sqrt(var + 1e-5) * g["gamma"] + g["beta"]) @ g["W2"]
    np.testing.assert_allclose(run(out, feed)[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["opset 16: no LayerNormalization", "its mean is read",
                                  "SLN below opset 23 in a model without one"])
def test_a_skip_norm_that_cannot_split_cleanly_stays_fused(case):
    if case == "SLN below opset 23 in a model without one":
        model = genai_mlp()
        model.graph.node.remove(model.graph.node[0])   # no default-domain SLN: the MLP reads x directly
        model.graph.node[0].input[0] = "x"
        fused = "SkipSimplifiedLayerNormalization"
    else:
        model = skip_layer_norm(opset=16) if case.startswith("opset") else skip_layer_norm(mean_read=True)
        fused = "SkipLayerNormalization"
    out, report = convert(model, Options(target="qnn"))
    assert report.verified, report.text()
    assert ("com.microsoft", fused) in _ops(out)
    assert str(report.verification.checker) == "PASSED"   # the written model stays what onnx's checker accepts


@needs_qnn
def test_the_split_skip_norm_runs_on_htp_where_the_fused_one_ran_on_the_cpu(tmp_path):
    src, out = tmp_path / "genai.onnx", tmp_path / "genai_qnn.onnx"
    model = genai_mlp()
    for value in list(model.graph.input) + list(model.graph.output):   # HTP: static shapes
        value.type.tensor_type.shape.dim[0].dim_value, value.type.tensor_type.shape.dim[1].dim_value = 1, 16
    onnx.save(model, src)
    assert convert_file(str(src), str(out), Options(target="qnn")).verified
    original, converted = qnn_htp.measure([str(src), str(out)], fp16=True)
    assert original["cpu_nodes"] == {"SkipSimplifiedLayerNormalization": 1}, original
    assert converted["error"] is None and not converted["cpu_nodes"] and converted["qnn_partitions"] == 1, converted
