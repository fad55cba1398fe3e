"""Real trained models from other projects (models/real/, scripts/fetch_real_models.py) convert with no option:
the Paddle2ONNX classifier writes -1 for its dynamic batch and computes its flatten's shape at run time;
silero-vad wants a sample rate it compares with (16000), an audio chunk long enough for its reflect Pad, and a
state whose batch is the audio's."""
import json
import os

from test_cli import ROOT, cli

REAL = os.path.join(ROOT, "models", "real")


def _convert(name, tmp_path):
    r = cli(os.path.join(REAL, name), tmp_path / "out.onnx", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads((tmp_path / "r.json").read_text())


def test_paddle_direction_classifier_converts_its_fc_layer(tmp_path):
    r, rep = _convert("ch_ppocr_mobile_v2.0_cls_infer.onnx", tmp_path)
    assert [c["op"] for c in rep["converted"]] == ["MatMul"] and not rep["skipped"] and not rep["reverted"]
    assert rep["converted"][0]["fused_add"] and rep["verification"]["passed"]


def test_silero_vad_verifies_on_inputs_it_accepts(tmp_path):
    r, rep = _convert("silero_vad.onnx", tmp_path)
    assert rep["verification"]["passed"]
    assert rep["verification"]["inputs"] == "input [1, 512], state [2, 1, 128], sr = 16000"
    assert "inputs: the first ones generated did not run the original; used input [1, 512]" in r.stdout
