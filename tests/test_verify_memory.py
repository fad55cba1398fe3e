"""Verification memory (issue 25, case 8): the verified conversion's peak stays within 1.5x of onnxruntime's own
peak running the original once on the same inputs, and the input sets and outputs it keeps in files (held.py)
come back as they went in.

The memory test converts a chain of six 256-wide MatMul+Relu layers at x [2, 32768, 256], where every activation
is 64 MB and outweighs both processes' baseline (about 100 MB for the CLI, 64 MB for a bare onnxruntime process).
Measured here: the CLI's peak 356 MB against onnxruntime's 260 MB (1.37x); before held.py, the chunked comparison
and the per-set runs, 3 input sets of the inputs, outputs and the rewrite's outputs were all held and compared in
whole float64 copies, with onnxruntime's memory arena on: at [8, 32768, 256], 4,885 MB against 848 MB (5.8x). About
12 s.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify import held
from passes.fc_to_conv.verify.held import Held
from test_cli import cli

SHAPE = [2, 32768, 256]

ALONE = """
import resource, sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal(tuple(map(int, sys.argv[2].split("x"))), dtype=np.float32)
s.run(None, {"x": x})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _chain(width: int = 256, layers: int = 6) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) / 16).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        x = f"r{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["batch", "tokens", width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "tokens", width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_verification_peak_is_within_1_5x_of_onnxruntime_running_the_original(tmp_path):
    src, out = tmp_path / "chain.onnx", tmp_path / "out" / "chain_conv.onnx"
    onnx.save(_chain(), src)
    out.parent.mkdir()
    dims = "x".join(map(str, SHAPE))
    r = cli(src, out, "--input-shape", f"x:{dims}", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verification"]["passed"] and len(report["converted"]) == 6
    alone = int(subprocess.run([sys.executable, "-c", ALONE, str(src), dims], capture_output=True, text=True,
                               check=True).stdout)
    ratio = report["peak_rss_bytes"] / alone
    print(f"conversion peak {report['peak_rss_bytes'] / 2**20:.0f} MB, onnxruntime alone {alone / 2**20:.0f} MB: "
          f"{ratio:.2f}x")
    assert ratio <= 1.5
    assert os.listdir(out.parent) == ["chain_conv.onnx"]   # the files held.py wrote went with the work folder


def test_held_sets_in_files_come_back_whole(tmp_path):
    sets = Held(str(tmp_path), limit=100)
    small = {"x": np.arange(4, dtype=np.float32)}
    sets.append(small)
    assert not sets.on_disk and sets[0]["x"] is small["x"]
    big = [np.ones((8, 8), np.float16), [{"a": 1.0}], np.array(3, np.int64)]
    sets.append(big)   # over the limit: both sets go to files, the non-array value stays as it is
    assert sets.on_disk and len(sets) == 2 and len(list(tmp_path.iterdir())) == 1
    assert np.array_equal(sets[0]["x"], small["x"]) and sets[0]["x"] is not small["x"]
    back = list(sets)[1]
    assert back[0].dtype == np.float16 and np.array_equal(back[0], big[0])
    assert back[1] == [{"a": 1.0}] and back[2].shape == () and int(back[2]) == 3
    sets.close()
    assert list(tmp_path.iterdir()) == []


def test_a_verification_held_in_files_reports_what_one_held_in_memory_does(monkeypatch):
    model = _chain(width=16, layers=3)
    options = dict(input_shapes={"x": [2, 5, 16]})
    _, in_memory = convert(model, Options(**options))
    monkeypatch.setattr(held, "HOLD_BYTES", 0)   # every set to files
    _, in_files = convert(model, Options(**options))
    assert in_memory.verification.passed and in_files.verification.passed
    assert [o.line() for o in in_files.verification.outputs] == [o.line() for o in in_memory.verification.outputs]
    assert in_files.verification.inputs == in_memory.verification.inputs == "x [2, 5, 16]"
