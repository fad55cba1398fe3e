"""The rknn toolchain (toolchains/rknn_npu.py): RKNN's build, in the interpreter --toolchain-python names, as --tune's
measure. rknn-toolkit2 lives in a venv of its own, so these tests give the toolchain an interpreter whose `rknn`
is a stand-in: its build log lists each node of the model with the cycles a table here gives its op, and its
simulator is onnxruntime. What is checked is fc2conv's side: the child, its log, the costs, the decisions, and the
one-line refusals. FC2CONV_RKNN_PYTHON names a real rknn-toolkit2 venv for the test that builds with it."""
import json
import os
import stat
import sys

import onnx
import pytest

from passes.fc_to_conv import toolchains
from passes.fc_to_conv.errors import BadInput
from test_cli import cli

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
STUB = '''
import json, os
import onnx, onnxruntime as ort
COSTS = json.load(open(os.path.join(os.path.dirname(__file__), "costs.json")))
class RKNN:
    def __init__(self, verbose=False):
        self.rules = []
    def config(self, target_platform=None, disable_rules=()):
        self.rules = list(disable_rules)
    def load_onnx(self, model, inputs, input_size_list):
        self.path, self.inputs = model, inputs
        return 0
    def build(self, do_quantization=False):
        if COSTS.get("needs_rule_off") and "convert_layernorm_to_exnorm" not in self.rules:
            print("E RKNN: KeyError in convert_layernorm_to_exnorm: disable it with disable_rules", flush=True)
            raise KeyError("convert_layernorm_to_exnorm")
        for i, n in enumerate(onnx.load(self.path).graph.node):
            print(f"I RKNN: [00:00:00.000] {i}  {n.op_type}  FLOAT16  NPU  (1,1,1,1)  (1,1,1,1)  "
                  f"1/1/{COSTS.get(n.op_type, 1)}  {n.name or n.op_type}", flush=True)
        return 0
    def init_runtime(self):
        self.sess = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        return 0
    def inference(self, inputs, data_format=None):
        outs = self.sess.run(None, dict(zip(self.inputs, inputs)))
        wrong = any(n.op_type == COSTS.get("wrong_with") for n in onnx.load(self.path).graph.node)
        return [o * 2 + 1 for o in outs] if wrong else outs
'''


def stand_in(tmp_path, costs):
    """An interpreter whose `rknn` is the stand-in above, with `costs` (op -> cycles) for its build log."""
    pkg = tmp_path / "stub" / "rknn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text(STUB)
    (pkg / "costs.json").write_text(json.dumps(costs))
    py = tmp_path / "python"
    py.write_text(f"#!/bin/sh\nPYTHONPATH='{tmp_path / 'stub'}' exec '{sys.executable}' \"$@\"\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return py


def tune(tmp_path, costs):
    out, js = tmp_path / "out.onnx", tmp_path / "r.json"
    r = cli(os.path.join(MODELS, "wrapped_gemms.onnx"), out, "--target", "rknn", "--tune", "--toolchain-python",
            stand_in(tmp_path, costs), "--report", js)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads(js.read_text()), onnx.load(str(out))


def test_layers_rknn_builds_slower_as_convs_go_back(tmp_path):
    """The stand-in's build costs a Conv 500 cycles and a Gemm 100 (each node else 1): the 3 wrapped layers
    go back, each with what was measured; the written model is the original's graph."""
    r, rep, out = tune(tmp_path, {"Conv": 500, "Gemm": 100})
    tuning = rep["tuning"]
    assert tuning["toolchain"] == "rknn" and tuning["original"]["unit"] == "cycles", tuning
    assert tuning["original"]["value"] == 3 * 100 + 17, tuning   # 3 Gemms and 17 other nodes
    assert not rep["converted"] and "Conv" not in [n.op_type for n in out.graph.node]
    assert "measured on rknn" in r.stdout and "cycles" in r.stdout, r.stdout
    assert not [p for p in os.listdir(tmp_path) if p.startswith("fc2conv-")]


def test_layers_rknn_builds_faster_as_convs_stay(tmp_path):
    r, rep, out = tune(tmp_path, {"Conv": 10, "Gemm": 100})
    tuning = rep["tuning"]
    assert sorted(c["name"] for c in rep["converted"]) == ["linear0", "linear1", "linear2"], r.stdout
    assert tuning["tuned"]["value"] < tuning["original"]["value"], tuning
    assert [n.op_type for n in out.graph.node].count("Conv") == 3


def test_a_build_its_layernorm_rule_breaks_is_built_again_without_it(tmp_path):
    _, rep, _ = tune(tmp_path, {"Conv": 10, "Gemm": 100, "needs_rule_off": True})
    assert rep["tuning"]["original"]["value"] == 317 and len(rep["converted"]) == 3, rep["tuning"]


def test_a_form_rknn_computes_wrongly_is_not_chosen_for_its_cycles(tmp_path):
    """The stand-in computes every model with a Gemm wrongly (x 2 + 1) and costs a Conv more: the original reads
    as not running, with why, and the conversion stays (RKNN computed the original Hugging Face GPT-2 wrongly and
    its conversion rightly, README)."""
    r, rep, out = tune(tmp_path, {"Conv": 500, "Gemm": 100, "wrong_with": "Gemm"})
    tuning = rep["tuning"]
    assert tuning["original"]["value"] is None and "RKNN computes it wrongly" in tuning["original"]["error"], tuning
    assert tuning["tuned"]["value"] > 0 and tuning["tuned"]["error"] is None, tuning
    assert sorted(c["name"] for c in rep["converted"]) == ["linear0", "linear1", "linear2"], r.stdout


def test_rknn_missing_names_its_own_venv(monkeypatch, tmp_path):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "rknn" else real(n, *a))
    with pytest.raises(BadInput) as e:
        toolchains.require("rknn")
    assert str(e.value) == ("--tune: the rknn toolchain needs rknn: rknn-toolkit2 pins numpy < 2, onnx <= 1.18 and "
                            "torch 2.4, so it lives in a venv of its own: python3.12 -m venv R && R/bin/pip install "
                            "rknn-toolkit2==2.5.0 \"setuptools<81\" (it imports pkg_resources), named by "
                            "--toolchain-python R/bin/python")
    r = cli(os.path.join(MODELS, "wrapped_gemms.onnx"), tmp_path / "o.onnx", "--target", "rknn", "--tune",
            "--toolchain-python", sys.executable)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"fc2conv: error: --tune: the rknn toolchain needs rknn in {sys.executable}: ")
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.skipif(not os.environ.get("FC2CONV_RKNN_PYTHON"), reason="no rknn-toolkit2 venv (FC2CONV_RKNN_PYTHON)")
def test_rknn_itself_measures_a_wrapped_model(tmp_path):
    """rknn-toolkit2's own build: wrapped_gemms converted ran at 0.175x the original's cycles (README)."""
    out, js = tmp_path / "out.onnx", tmp_path / "r.json"
    r = cli(os.path.join(MODELS, "wrapped_gemms.onnx"), out, "--target", "rknn", "--tune", "--toolchain-python",
            os.environ["FC2CONV_RKNN_PYTHON"], "--report", js)
    assert r.returncode == 0, r.stdout + r.stderr
    tuning = json.loads(js.read_text())["tuning"]
    assert tuning["toolchain"] == "rknn" and tuning["tuned"]["value"] < 0.5 * tuning["original"]["value"], tuning
