"""--check-with openvino: OpenVINO reads the written file, compiles it for CPU at f32 and runs it; each output is
compared with the original's on onnxruntime. A file it cannot read, or numbers that differ, fail the run: exit 1,
nothing written. Without the openvino package the option is refused up front (exit 2)."""
import os
import sys

import numpy as np
import onnx
import pytest

from builders import matmul_add_model
from passes.fc_to_conv import Options, convert, convert_file
from passes.fc_to_conv import __main__ as cli_main
from passes.fc_to_conv.verify import downstream
from passes.fc_to_conv.files.canonical import header
from passes.fc_to_conv.verify.verdict import Reference

pytest.importorskip("openvino")  # in the test extra; CI installs it


def _reference(model, shape=(5, 8)):
    feeds = [{"X": np.random.default_rng(i).standard_normal(shape).astype(np.float32)} for i in range(2)]
    return Reference(model, ["Y"], feeds)


def test_openvino_matches_a_converted_model():
    model = matmul_add_model(["n", 8], 8, 4, (4,))
    new, report = convert(model, Options(check_with="openvino"))
    ov = report.downstream
    assert report.verified and ov.passed and [o.name for o in ov.outputs] == ["Y"]
    assert ov.outputs[0].norm_err <= 1e-5
    text = report.text()
    assert "OpenVINO" in text and "CPU, f32 precision" in text and "PASSED | output 'Y' | max_abs=" in text


def test_a_file_openvino_cannot_read_fails(tmp_path):
    """The layout fc2conv once wrote: the graph split over two protobuf fragments. onnxruntime and onnx read it
    (protobuf merges repeated messages); OpenVINO does not."""
    model = matmul_add_model(["n", 8], 8, 4, (4,))
    inits = onnx.GraphProto()
    inits.initializer.extend(model.graph.initializer)
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    del rest.graph.initializer[:]
    payload = inits.SerializeToString()
    path = tmp_path / "fragments.onnx"
    path.write_bytes(header(7, len(payload)) + payload + rest.SerializeToString())
    assert onnx.load(str(path)).graph.initializer[0].name == "W"   # a valid protobuf encoding of the model
    result = downstream.check("openvino", str(path), _reference(model), 1e-5, 1e-6)
    assert not result.passed
    assert result.error.startswith("OpenVINO cannot read the written model: ")


def test_different_numbers_fail(tmp_path):
    model = matmul_add_model(["n", 8], 8, 4, (4,))
    wrong = matmul_add_model(["n", 8], 8, 4, (4,))
    w = wrong.graph.initializer[0]
    w.CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(w), "W"))
    result = downstream.check("openvino", wrong, _reference(model), 1e-5, 1e-6)
    assert not result.passed and result.error is None
    assert result.outputs[0].norm_err > 0.1
    assert "FAILED | output 'Y'" in "\n".join(result.lines())


def _cli(args, capsys):
    code = cli_main.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_failed_downstream_check_writes_nothing(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4, (4,)), str(src))

    def failing(tool, model, reference, rtol, atol):
        return downstream.Downstream("OpenVINO", "test", error="OpenVINO cannot read the written model: test")
    monkeypatch.setattr(downstream, "check", failing)
    code, out, err = _cli([src, tmp_path / "out.onnx", "--check-with", "openvino"], capsys)
    assert code == 1
    assert "FAILED | OpenVINO cannot read the written model: test" in err
    assert sorted(os.listdir(tmp_path)) == ["in.onnx"]


def test_without_openvino_the_option_is_refused(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4, (4,)), str(src))
    monkeypatch.setitem(sys.modules, "openvino", None)   # import openvino now raises ImportError
    code, out, err = _cli([src, tmp_path / "out.onnx", "--check-with", "openvino"], capsys)
    assert code == 2
    assert err.strip() == ('fc2conv: error: --check-with openvino needs the openvino package: '
                           'pip install -e ".[openvino]" (or pip install openvino)')
    assert sorted(os.listdir(tmp_path)) == ["in.onnx"]


def test_check_with_runs_without_onnxruntime_verification(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4, (4,)), str(src))
    report = convert_file(str(src), str(tmp_path / "out.onnx"), Options(verify=False, check_with="openvino"))
    assert report.verification is None and report.downstream.passed and report.written
