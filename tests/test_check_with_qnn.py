"""--check-with qnn (verify/downstream_qnn.py): the written model on the QNN HTP emulator against the original on
onnxruntime, within fp16's tolerance (float models run in fp16 there) or the quantized one."""
import importlib.util
import os

import numpy as np
import onnx
import pytest

from passes.fc_to_conv.errors import BadInput
from passes.fc_to_conv.verify import downstream
from passes.fc_to_conv.verify.verdict import Reference
from test_cli import cli

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
needs_qnn = pytest.mark.skipif(importlib.util.find_spec("onnxruntime_qnn") is None,
                               reason="onnxruntime-qnn is not installed (the qnn extra)")


@needs_qnn
@pytest.mark.parametrize("name,how", [("mlp.onnx", "fp16 precision"),
                                      (os.path.join("quantized", "mlp_qdq_u8.onnx"), "its integer kernels")])
def test_cli_checks_the_written_model_on_htp(tmp_path, name, how):
    out = tmp_path / "out.onnx"
    r = cli(os.path.join(MODELS, name), out, "--check-with", "qnn")
    assert r.returncode == 0 and out.exists(), r.stdout + r.stderr
    assert f"QNN 2" in r.stdout and f"HTP emulator, {how}: read, compile, run on the same inputs" in r.stdout
    section = r.stdout[r.stdout.index("HTP emulator"):]
    assert "  placement: CPU nodes: " in section and "  PASSED | output 'logits'" in section, r.stdout


@needs_qnn
def test_a_model_htp_computes_otherwise_fails(tmp_path):
    """The check compares numbers: a file whose weights differ from the original's fails on HTP."""
    src = os.path.join(MODELS, "mlp.onnx")
    original = onnx.load(src)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((2, 32)).astype(np.float32)}]
    reference = Reference(original, [o.name for o in original.graph.output], feeds)
    wrong = onnx.load(src)
    w = next(t for t in wrong.graph.initializer if len(t.dims) == 2)
    value = onnx.numpy_helper.to_array(w) * 1.1
    w.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), w.name))
    path = str(tmp_path / "wrong.onnx")
    onnx.save(wrong, path)
    result = downstream.check("qnn", path, reference, 1e-5, 1e-6)
    assert not result.passed and result.error is None, result.lines()
    assert "FAILED | output 'logits'" in "\n".join(result.lines())
    good = downstream.check("qnn", src, reference, 1e-5, 1e-6)
    assert good.passed, good.lines()


def test_missing_emulator_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime_qnn" else real(n, *a))
    with pytest.raises(BadInput, match=r'--check-with qnn needs .*pip install -e "\.\[qnn\]"'):
        downstream.require("qnn")
