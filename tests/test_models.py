"""Every model shipped in models/ converts by the CLI: every FC layer with a constant weight becomes a Conv,
verification and onnx.checker pass, and only activation x activation products stay, each with its reason. The
written file is canonical (test_cli.cli checks every output) and OpenVINO reads, compiles and matches it."""
import glob
import json
import os

import numpy as np
import onnx
import pytest

from builders import assert_converted, run
from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.graph.graph_index import reads
from passes.fc_to_conv.files.model_io import load
from test_cli import ROOT, cli

MODELS = sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx")))
ATTENTION = "both operands are computed at run time"


def test_models_are_shipped():
    names = {os.path.basename(m) for m in MODELS}
    assert {"chapter_fc.onnx", "mlp.onnx", "transformer_block.onnx", "torch_mlp.onnx", "bert_tiny.onnx",
            "bert_tiny_external.onnx", "mlp_fp16.onnx", "cnn_classifier.onnx", "cnn_classifier_fp16.onnx",
            "resnet_tiny.onnx", "vit_tiny.onnx", "gpt_tiny.onnx", "computed_weights.onnx", "ir3_mlp.onnx",
            "if_loop.onnx", "audio_block.onnx", "grouped.onnx", "wrapped_gemms.onnx", "keras_encoder.onnx",
            "jax_mlp.onnx", "hf_distilbert.onnx", "hf_gpt2.onnx", "hf_llama_kv.onnx"} <= names


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_cli_converts_shipped_model(path, tmp_path):
    out = tmp_path / "out.onnx"
    r = cli(path, out, "--report", tmp_path / "r.json", "--check-with", "openvino")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["verification"]["passed"] and rep["verification"]["checker"] == "PASSED"
    assert not rep["reverted"]
    # OpenVINO at f32 against the original on onnxruntime: 1e-5 of the output's magnitude (fp16 models: the fp16
    # tolerance, as their outputs are rounded to fp16 by both runtimes)
    limit = 5e-3 if "fp16" in path else 1e-5
    ov = rep["downstream"]
    assert ov["passed"] and ov["tool"] == "OpenVINO" and ov["outputs"], ov
    assert all(o["norm_err"] <= limit for o in ov["outputs"]), ov["outputs"]
    assert rep["converted"], "every shipped model has FC layers"
    assert all(s["reason"].startswith(ATTENTION) for s in rep["skipped"]), rep["skipped"]
    before = rep["ops_before"]
    fc_before = before.get("Gemm", 0) + before.get("MatMul", 0) + before.get("Einsum", 0)
    assert len(rep["converted"]) + len(rep["skipped"]) == fc_before
    after = onnx.load(str(out))
    left = [n for n in after.graph.node if n.op_type in ("Gemm", "MatMul", "Einsum")]
    assert len(left) == len(rep["skipped"])
    convs = {c["conv"] for c in rep["converted"]}   # layers reading one image share one Conv (siblings.py)
    assert rep["ops_after"].get("Conv", 0) == before.get("Conv", 0) + len(convs)
    # nothing left behind: every initializer the output holds is read (onnxruntime warns of each one that is not)
    read = {i for n in after.graph.node for i in reads(n)}      # subgraphs' outer-scope reads included
    original = onnx.load(path, load_external_data=False)
    unread_before = {t.name for t in original.graph.initializer} - {i for n in original.graph.node for i in reads(n)}
    assert [t.name for t in after.graph.initializer if t.name not in read and t.name not in unread_before] == []


@pytest.mark.parametrize("name", ["cnn_classifier.onnx", "cnn_classifier_fp16.onnx", "resnet_tiny.onnx"])
def test_classifier_heads_are_full_kernel_convs_without_flatten(name, tmp_path):
    model, _ = load(os.path.join(ROOT, "models", name))
    new, report = convert(model)
    assert_converted(report, [c.name for c in report.converted])   # none reverted
    assert len(report.converted) == (3 if "cnn" in name else 1)
    first = report.converted[0]
    assert first.layout == "full-kernel" and first.conv_weight_shape[2:] == ([4, 4] if "cnn" in name else [1, 1])
    ops = [n.op_type for n in new.graph.node]
    assert "Flatten" not in ops and "Transpose" not in ops and ops.count("Reshape") == 1 and ops[-1] == "Reshape"


def test_bert_dynamic_batch_and_sequence():
    """Two different (batch, seq) sizes through the converted encoder, compared with the original."""
    model, _ = load(os.path.join(ROOT, "models", "bert_tiny.onnx"))
    new, report = convert(model, Options(verify=False))
    assert len(report.converted) == 13
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 7), (3, 19)]:
        feed = {"input_ids": rng.integers(0, 1000, (batch, seq)), "attention_mask": np.ones((batch, seq), np.int64)}
        feed["attention_mask"][0, seq // 2:] = 0
        for got, ref in zip(run(new, feed), run(model, feed)):
            assert got.shape == ref.shape and got.shape[0] == batch
            assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))


def test_chapter_example_reproduced():
    """The chapter's 4 -> 2 layer: y_i = sum_j w_ij x_j + b_i, before and after, against float64 numpy."""
    model, _ = load(os.path.join(ROOT, "models", "chapter_fc.onnx"))
    w = onnx.numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    b = onnx.numpy_helper.to_array(model.graph.initializer[1]).astype(np.float64)
    new, report = convert(model)
    assert report.verified and [n.op_type for n in new.graph.node].count("Conv") == 1
    x = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, 2.0]], np.float32)
    expected = x.astype(np.float64) @ w.T + b
    np.testing.assert_allclose(run(new, {"x": x})[0], expected, rtol=1e-6, atol=1e-6)
