"""A model cannot make the tool read or write outside its own folder, and the input's files are never written."""
import hashlib
import os

import numpy as np
import onnx

from builders import set_external_location, matmul_add_model, rand, run
from test_cli import cli


def snapshot(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def external_model(folder, name="m.onnx", location=None):
    m = matmul_add_model(["n", 64], 64, 32, (32,))
    onnx.save_model(m, os.path.join(folder, name), save_as_external_data=True,
                    location=location or name + ".data", size_threshold=0)
    return os.path.join(folder, name)


def test_traversal_locations_are_refused_and_nothing_outside_changes(tmp_path):
    inside = tmp_path / "models"
    inside.mkdir()
    secret = tmp_path / "secret.data"
    secret.write_bytes(os.urandom(64 * 32 * 4 + 32 * 4))
    path = external_model(str(inside))
    m = onnx.load(path, load_external_data=False)
    set_external_location(m, "../secret.data")
    onnx.save_model(m, path)
    before = snapshot(tmp_path)
    r = cli(path, inside / "out.onnx")
    assert r.returncode == 2 and "outside the model's folder" in r.stderr
    assert snapshot(tmp_path) == before


def test_in_place_never_writes_the_input_data_file(tmp_path):
    """--in-place replaces the model file; the data file it read stays byte for byte, new data goes beside it."""
    path = external_model(str(tmp_path), "m.onnx", location="m.onnx.data")
    original = onnx.load(path)
    data_before = (tmp_path / "m.onnx.data").read_bytes()
    assert cli(path, path).returncode == 2, "the input is refused as output without --in-place"
    r = cli(path, path, "--in-place")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.onnx.data").read_bytes() == data_before
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.1.data", "m.onnx.data"]
    converted = onnx.load(path)
    assert "Conv" in [n.op_type for n in converted.graph.node]
    x = rand((3, 64))
    np.testing.assert_allclose(run(converted, {"X": x})[0], run(original, {"X": x})[0], rtol=1e-5, atol=1e-5)


def test_output_stays_in_the_output_folder(tmp_path):
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    path = external_model(str(src_dir))
    before = snapshot(src_dir)
    assert cli(path, out_dir / "c.onnx").returncode == 0
    assert snapshot(src_dir) == before
    assert sorted(os.listdir(out_dir)) == ["c.onnx", "c.onnx.data"]
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]
