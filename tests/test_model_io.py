"""Reading bad files ends in one-line BadInput errors; writing is atomic; external data round-trips."""
import os

import numpy as np
import onnx
import pytest

from builders import assert_converted, set_external_location, matmul_add_model, rand, run
from passes.fc_to_conv import BadInput, Options, convert_file
from passes.fc_to_conv.files.model_io import load
from test_cli import ROOT


def _bad(path, match):
    with pytest.raises(BadInput) as e:
        load(str(path))
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg


def external_model(folder, name="m.onnx"):
    m = matmul_add_model(["n", 64], 64, 32, (32,))
    path = os.path.join(folder, name)
    copy = onnx.ModelProto()
    copy.CopyFrom(m)  # saving with external data moves the tensors out of the saved object
    onnx.save_model(copy, path, save_as_external_data=True, location=name + ".data", size_threshold=0)
    return m, path


def test_missing_directory_empty(tmp_path):
    _bad(tmp_path / "nope.onnx", "nope.onnx: no such file")
    _bad(tmp_path, "is a directory")
    (tmp_path / "e.onnx").write_bytes(b"")
    _bad(tmp_path / "e.onnx", "empty file, not an ONNX model")


@pytest.mark.parametrize("content,match", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "a Git LFS pointer, not the model"),
    (os.urandom(4096), "not an ONNX model"),
    (b'{"graph": {"node": []}}', "not an ONNX model"),
    (b"hello, this is a text file\n" * 10, "not an ONNX model")])
def test_not_a_model(tmp_path, content, match):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    _bad(p, match)


def test_truncated_model(tmp_path):
    m = matmul_add_model(["n", 64], 64, 32, (32,))
    data = m.SerializeToString()
    p = tmp_path / "t.onnx"
    p.write_bytes(data[: len(data) // 2])
    _bad(p, "not an ONNX model")


def test_no_opset_import(tmp_path):
    m = matmul_add_model(["n", 4], 4, 3)
    del m.opset_import[:]
    p = tmp_path / "o.onnx"
    p.write_bytes(m.SerializeToString())
    _bad(p, "imports no default-domain opset")


def test_external_data_missing_truncated_outside(tmp_path):
    _, path = external_model(str(tmp_path))
    data = tmp_path / "m.onnx.data"
    blob = data.read_bytes()
    data.write_bytes(blob[:100])
    _bad(path, "(truncated?)")
    data.unlink()
    _bad(path, "file not found in")
    m = onnx.load(path, load_external_data=False)
    set_external_location(m, "../m.onnx.data")
    onnx.save_model(m, path)
    _bad(path, "outside the model's folder")
    set_external_location(m, "/etc/passwd")
    onnx.save_model(m, path)
    _bad(path, "an absolute path")


def test_external_data_symlink_refused(tmp_path):
    _, path = external_model(str(tmp_path))
    (tmp_path / "m.onnx.data").rename(tmp_path / "real.data")
    os.symlink(tmp_path / "real.data", tmp_path / "m.onnx.data")
    _bad(path, "a symbolic link")


def test_external_data_round_trip(tmp_path):
    original, path = external_model(str(tmp_path))
    out = tmp_path / "out" / "c.onnx"
    out.parent.mkdir()
    report = convert_file(path, str(out))
    assert report.written
    assert_converted(report, ["matmul"])
    assert sorted(os.listdir(out.parent)) == ["c.onnx", "c.onnx.data"]
    written = onnx.load(str(out), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in written.graph.initializer)
    converted = onnx.load(str(out))
    x = rand((3, 64))
    np.testing.assert_allclose(run(converted, {"X": x})[0], run(original, {"X": x})[0], rtol=1e-5, atol=1e-5)
    assert (tmp_path / "m.onnx.data").exists(), "the input's external data is untouched"


def test_output_data_file_may_have_the_input_data_files_name(tmp_path):
    """models/bert_tiny_external.onnx to out/bert_tiny_external.onnx: both data files are called
    bert_tiny_external.onnx.data. The tensors the pass leaves alone (the embeddings) must still be copied into the
    output's file; they were once taken for tensors already written there, and the output did not run."""
    src = os.path.join(ROOT, "models", "bert_tiny_external.onnx")
    out = tmp_path / "bert_tiny_external.onnx"
    report = convert_file(src, str(out), Options(input_sets=1))
    assert report.written and len(report.converted) == 13
    assert_converted(report, [c.name for c in report.converted])
    assert sorted(os.listdir(tmp_path)) == ["bert_tiny_external.onnx", "bert_tiny_external.onnx.data"]


def test_small_model_is_written_as_one_file(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 4], 4, 3), str(src))
    convert_file(str(src), str(tmp_path / "out.onnx"))
    assert sorted(os.listdir(tmp_path)) == ["in.onnx", "out.onnx"]


def test_output_paths_are_checked(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 4], 4, 3), str(src))
    with pytest.raises(BadInput, match="output folder .* does not exist"):
        convert_file(str(src), str(tmp_path / "missing" / "out.onnx"))
    with pytest.raises(BadInput, match="would overwrite the input"):
        convert_file(str(src), str(src))
    assert sorted(os.listdir(tmp_path)) == ["in.onnx"]
