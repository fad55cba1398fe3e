"""--toolchain-python (a toolchain measured by another interpreter, a venv of its own) and the ncnn toolchain
(pnnx + ncnn, which bring torch: usually that other venv). The ncnn measurement runs where pnnx and ncnn import,
in this interpreter or in the one FC2CONV_NCNN_PYTHON names; elsewhere it skips, and what is checked is the
one-line refusal."""
import json
import os
import stat
import sys
import tempfile

import onnx
import pytest

from passes.fc_to_conv import toolchains
from passes.fc_to_conv.errors import BadInput
from passes.fc_to_conv.toolchains.latency import absent_modules
from passes.fc_to_conv.toolchains.ncnn_cpu import NcnnCpu
from test_cli import cli
from test_tune import three_layers


LEFT = ("fc2conv-measure-", "fc2conv-ncnn-", "fc2conv-crash-", "fc2conv-tune-")   # what measuring may leave


def _wrapper(tmp_path):
    """An interpreter that leaves a mark each time it runs: what --toolchain-python names is what measures."""
    mark, py = tmp_path / "ran", tmp_path / "python"
    py.write_text(f"#!/bin/sh\necho x >> '{mark}'\nexec '{sys.executable}' \"$@\"\n")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return py, mark


def test_the_toolchain_python_is_the_one_that_measures(tmp_path):
    src, out, js = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    onnx.save(three_layers(), str(src))
    py, mark = _wrapper(tmp_path)
    r = cli(src, out, "--tune", "--tune-rounds", "2", "--toolchain-python", py, "--report", js)
    assert r.returncode == 0, r.stderr
    tuning = json.loads(js.read_text())["tuning"]
    assert tuning["toolchain"] == "onnxruntime" and tuning["original"]["value"] > 0, tuning
    # the probe of what it has (once, before anything runs), then one run per measurement
    assert len(mark.read_text().split()) == 1 + tuning["measurements"], (mark.read_text(), tuning)


def test_a_toolchain_python_that_does_not_run_is_one_line(tmp_path):
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(three_layers(), str(src))
    r = cli(src, out, "--tune", "--toolchain-python", tmp_path / "no" / "python")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == (f"fc2conv: error: --tune: --toolchain-python {tmp_path / 'no' / 'python'}: cannot run it as "
                        "a Python interpreter")
    assert not out.exists()


def test_a_toolchain_python_without_the_toolchain_names_what_to_install(tmp_path):
    py, _ = _wrapper(tmp_path)
    assert absent_modules(("numpy", "no_such_module_fc2conv"), str(py)) == ["no_such_module_fc2conv"]
    tc = NcnnCpu()
    tc.needs = tc.needs + ("no_such_module_fc2conv",)
    tc.python = str(py)
    here = ", ".join(absent_modules(("pnnx", "ncnn")))   # the wrapper runs this interpreter
    assert tc.missing().startswith(f"the ncnn toolchain needs {here + ', ' if here else ''}no_such_module_fc2conv "
                                   f"in {py}: pip install pnnx ncnn"), tc.missing()


def test_ncnn_missing_names_pnnx_and_the_other_venv(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in ("pnnx", "ncnn") else real(n, *a))
    with pytest.raises(BadInput) as e:
        toolchains.require("ncnn")
    assert str(e.value) == ("--tune: the ncnn toolchain needs pnnx, ncnn: pip install pnnx ncnn (pnnx brings "
                            "torch); or in a venv of its own, with numpy, onnx and onnxruntime beside them, named by "
                            "--toolchain-python V/bin/python")


def test_qnn_is_measured_in_fc2convs_own_interpreter():
    with pytest.raises(BadInput, match=r"--tune: --toolchain-python: the qnn toolchain runs in fc2conv's own"):
        toolchains.require("qnn", python=sys.executable)


def _ncnn_python():
    for py in (None, os.environ.get("FC2CONV_NCNN_PYTHON")):
        if (py is None or os.path.exists(py)) and absent_modules(NcnnCpu.needs, py) == []:
            return py or sys.executable
    return None


@pytest.mark.skipif(_ncnn_python() is None, reason="pnnx and ncnn are not installed (FC2CONV_NCNN_PYTHON: a venv)")
def test_cli_tunes_on_ncnn(tmp_path):
    """pnnx converts each model once; ncnn times it in fp32. The figures come back, and a written model never
    measures slower than the original by more than the noise floor."""
    src, out, js = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    onnx.save(three_layers(), str(src))
    before = set(os.listdir(tempfile.gettempdir()))
    r = cli(src, out, "--target", "ncnn", "--tune", "--tune-rounds", "3", "--toolchain-python", _ncnn_python(),
            "--report", js)
    assert r.returncode == 0, r.stderr
    tuning = json.loads(js.read_text())["tuning"]
    assert tuning["toolchain"] == "ncnn" and tuning["original"]["value"] > 0 and tuning["tuned"]["value"] > 0
    assert "tuning: measured on ncnn (" in r.stdout, r.stdout
    assert not [p for p in set(os.listdir(tempfile.gettempdir())) - before if p.startswith(LEFT)]


def test_a_model_that_kills_the_measuring_process_takes_only_its_own_result(tmp_path, monkeypatch):
    """All models are timed in one child process; when it dies, each model without a result is timed again alone."""
    from passes.fc_to_conv.toolchains.onnxruntime_cpu import OnnxruntimeCpu
    good, crash = str(tmp_path / "a.onnx"), str(tmp_path / "crash.onnx")
    onnx.save(three_layers(), good)
    onnx.save(three_layers(), crash)
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(__file__))
    before = set(os.listdir(tempfile.gettempdir()))
    tc = OnnxruntimeCpu()
    tc.module = "latency_crash"
    first, second, third = tc.measure([crash, good, crash], rounds=2, runs=3)
    assert first.value is None and first.error == "the measuring process was ended by SIGSEGV", first
    assert second.error is None and second.value > 0 and len(second.runs) == 2, second
    assert third.value is None and third.error == first.error
    assert not [p for p in set(os.listdir(tempfile.gettempdir())) - before if p.startswith(LEFT)]
