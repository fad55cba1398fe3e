"""Operators onnxruntime registers beyond onnx's own are valid input: its contrib ops in the default domain
(SimplifiedLayerNormalization, as onnxruntime-genai's model builder and the transformer optimizer write it) and in
com.microsoft (SkipSimplifiedLayerNormalization). The FC layers around them convert, and the written model computes
what the original computes on onnxruntime; an operator neither knows is still refused at the gate."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import init, make_model, run, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.files.validate import known_default_op
from test_cli import cli

E, H = 16, 24


def genai_mlp(norm_op: str = "SimplifiedLayerNormalization") -> onnx.ModelProto:
    """The shape of a genai decoder layer's MLP: a default-domain SimplifiedLayerNormalization, up-projection,
    com.microsoft SkipSimplifiedLayerNormalization (residual sum as a second output), down-projection."""
    rng = np.random.default_rng(3)
    f = np.float32
    nodes = [
        helper.make_node(norm_op, ["x", "g1"], ["n1"], name="/model/layers.0/input_layernorm/LayerNorm",
                         axis=-1, epsilon=1e-6, stash_type=1),
        helper.make_node("MatMul", ["n1", "W1"], ["h"], name="/model/layers.0/mlp/up_proj/MatMul"),
        helper.make_node("SkipSimplifiedLayerNormalization", ["h", "skip", "g2"], ["n2", "", "", "sum"],
                         name="/model/layers.0/post_attention_layernorm/SkipLayerNorm", domain="com.microsoft",
                         epsilon=1e-6),
        helper.make_node("MatMul", ["n2", "W2"], ["y"], name="/model/layers.0/mlp/down_proj/MatMul"),
    ]
    inits = [init("g1", (rng.random(E) + 0.5).astype(f)), init("W1", (rng.standard_normal((E, H)) * 0.2).astype(f)),
             init("g2", (rng.random(H) + 0.5).astype(f)), init("W2", (rng.standard_normal((H, E)) * 0.2).astype(f))]
    m = make_model(nodes, [vi("x", ["batch", "seq", E]), vi("skip", ["batch", "seq", H])],
                   [vi("y", ["batch", "seq", E]), vi("sum", ["batch", "seq", H])], inits, opset=21, ir=10)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


def _rms(x, g, eps=1e-6):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def test_runtime_registry_is_consulted():
    assert known_default_op("SimplifiedLayerNormalization")      # onnxruntime's, not onnx's
    assert not onnx.defs.has("SimplifiedLayerNormalization")     # so the gate cannot ask onnx alone
    assert known_default_op("MatMul") and not known_default_op("FullyConnectedMagic")


def test_genai_norms_convert_and_compute_the_same():
    model = genai_mlp()
    out, report = convert(model)
    assert [c.op for c in report.converted] == ["MatMul", "MatMul"] and not report.skipped, report.text()
    assert report.verified, report.text()
    assert {n.op_type for n in out.graph.node} >= {"Conv", "SimplifiedLayerNormalization",
                                                    "SkipSimplifiedLayerNormalization"}
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((2, 5, E)).astype(np.float32),
            "skip": rng.standard_normal((2, 5, H)).astype(np.float32)}
    # float64 reference of the original's function: the converted model must match it as onnxruntime's
    # original does (fp32 rounding over K <= 24 terms: 1e-5 relative is ample; measured 2e-7)
    g = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    x, skip = feed["x"].astype(np.float64), feed["skip"].astype(np.float64)
    s = _rms(x, g["g1"]) @ g["W1"] + skip
    want_y = _rms(s, g["g2"]) @ g["W2"]
    for m in (model, out):
        y, total = run(m, feed)
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(total, s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flags", [[], ["--no-verify"]])
def test_cli_accepts_genai_norms(tmp_path, flags):
    src = tmp_path / "genai.onnx"
    onnx.save(genai_mlp(), str(src))
    r = cli(src, tmp_path / "out.onnx", *flags)
    assert r.returncode == 0, r.stderr
    assert "converted 2 of 2 fully connected layers" in r.stdout, r.stdout


def test_an_operator_neither_knows_is_still_refused(tmp_path):
    src, out = tmp_path / "bad.onnx", tmp_path / "out.onnx"
    onnx.save(genai_mlp("SimplifiedLayerNormalizationMagic"), str(src))
    r = cli(src, out)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "unknown operator 'SimplifiedLayerNormalizationMagic'" in lines[0]
    assert "neither onnx" in lines[0] and "nor the installed onnxruntime knows it" in lines[0]
    assert not out.exists()
