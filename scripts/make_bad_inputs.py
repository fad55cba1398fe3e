"""Build the bad-input corpus: files (and paths) that fc2conv must refuse with exit code 2, one line on stderr
that names the problem, no traceback and no output file.

    python scripts/make_bad_inputs.py OUTDIR

tests/test_bad_inputs.py builds the corpus in a temporary folder with build() and runs the CLI on every case.
Each case is (name, path to pass as the input, a fragment the one-line message must contain).
"""
from __future__ import annotations

import gzip
import os
import pickle
import sys
from typing import List, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def good_model(ir=8, opset=17) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="fc")], "g",
                          [helper.make_tensor_value_info("X", F, ["n", 4])],
                          [helper.make_tensor_value_info("Y", F, ["n", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def _external(folder: str, name: str, edit) -> str:
    """A model whose weight W lives in `<name>.data`, then edited by `edit(model, data_path)`."""
    path = os.path.join(folder, name)
    m = good_model()
    onnx.save_model(m, path, save_as_external_data=True, location=name + ".data", size_threshold=0)
    m = onnx.load(path, load_external_data=False)
    edit(m, os.path.join(folder, name + ".data"))
    onnx.save_model(m, path)
    return path


def _set_ext(m: onnx.ModelProto, key: str, value: str) -> None:
    for e in m.graph.initializer[0].external_data:
        if e.key == key:
            e.value = value
            return
    m.graph.initializer[0].external_data.add(key=key, value=value)


def build(folder: str) -> List[Tuple[str, str, str]]:
    os.makedirs(folder, exist_ok=True)
    cases: List[Tuple[str, str, str]] = []

    def write(name: str, data: bytes, expect: str) -> None:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        cases.append((name, path, expect))

    def model(name: str, m: onnx.ModelProto, expect: str) -> None:
        write(name, m.SerializeToString(), expect)

    rng = np.random.default_rng(0)
    good = good_model().SerializeToString()
    cases.append(("missing path", os.path.join(folder, "does_not_exist.onnx"), "no such file"))
    os.makedirs(os.path.join(folder, "a_directory.onnx"), exist_ok=True)
    cases.append(("directory", os.path.join(folder, "a_directory.onnx"), "is a directory"))
    write("empty.onnx", b"", "empty file")
    write("random.onnx", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not an ONNX model")
    write("lfs_pointer.onnx", b"version https://git-lfs.github.com/spec/v1\noid sha256:"
          + b"0" * 64 + b"\nsize 440000000\n", "a Git LFS pointer")
    write("text.onnx", b"This is not a model.\nJust some text.\n" * 20, "not an ONNX model")
    write("json.onnx", b'{"ir_version": 8, "graph": {"node": [{"op_type": "MatMul"}]}}', "not an ONNX model")
    write("truncated.onnx", good[: len(good) * 2 // 3], "not an ONNX model")
    write("torch_checkpoint.onnx", pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}), "not an ONNX model")
    write("gzipped.onnx", gzip.compress(good), "not an ONNX model")
    write("tensor_proto.onnx", numpy_helper.from_array(np.ones((3, 3), np.float32)).SerializeToString(),
          "not an ONNX model")

    m = good_model()
    del m.opset_import[:]
    model("no_opset.onnx", m, "imports no default-domain opset")
    m = good_model()
    m.ir_version = onnx.IR_VERSION + 5
    model("ir_too_new.onnx", m, f"IR version {onnx.IR_VERSION + 5} is newer than the installed onnx")
    m = good_model(opset=onnx.defs.onnx_opset_version() + 3)
    model("opset_too_new.onnx", m, "is newer than the installed onnx")
    m = good_model()
    m.graph.node[0].input[0] = "nowhere"
    model("dangling_input.onnx", m, "reads 'nowhere', which no node, input or initializer provides")
    m = good_model()
    m.graph.node.extend([helper.make_node("Relu", ["b"], ["a"], name="r1"),
                         helper.make_node("Relu", ["a"], ["b"], name="r2")])
    model("cycle.onnx", m, "the graph has a cycle")
    m = good_model()
    m.graph.node.extend([helper.make_node("Relu", ["b"], ["c"], name="late"),
                         helper.make_node("Relu", ["X"], ["b"], name="early")])
    model("unsorted.onnx", m, "nodes are out of order")
    m = good_model()
    m.graph.node.append(helper.make_node("Relu", ["X"], ["Y"], name="second_writer"))
    model("two_writers.onnx", m, "tensor 'Y' is written twice")
    m = good_model()
    m.graph.node.append(helper.make_node("Relu", ["Y"], ["X"], name="overwrites_input"))
    model("writes_an_input.onnx", m, "tensor 'X' is written twice")
    m = good_model()
    m.graph.node[0].op_type = "FullyConnectedMagic"
    model("unknown_op.onnx", m, "unknown operator 'FullyConnectedMagic'")
    m = good_model()
    m.graph.node[0].domain = "com.vendor"
    model("unimported_domain.onnx", m, "uses domain 'com.vendor', which the model does not import")
    m = good_model()
    m.graph.output[0].name = "Z"
    model("output_not_produced.onnx", m, "graph output 'Z' is produced by nothing")
    m = good_model()
    m.graph.initializer.append(m.graph.initializer[0])
    model("duplicate_initializer.onnx", m, "two initializers are named 'W'")
    m = good_model()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:20]
    model("short_initializer.onnx", m, "data shorter than its shape")
    m = good_model()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.float_data.extend([1.0] * 5)
    model("short_typed_initializer.onnx", m, "holds 5 of the 12 values")
    m = good_model()
    m.graph.initializer[0].data_type = 77
    model("unknown_dtype.onnx", m, "unknown element type (77)")
    body = helper.make_graph([helper.make_node("Relu", ["ghost"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", F, None)])
    m = good_model()
    m.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    m.graph.node.append(helper.make_node("If", ["c"], ["o"], then_branch=body, else_branch=body))
    model("subgraph_dangling_input.onnx", m, "reads 'ghost', which no node")

    cases.append(("external data missing", _external(folder, "ext_missing.onnx",
                                                     lambda m, d: os.remove(d)), "file not found"))
    cases.append(("external data truncated", _external(
        folder, "ext_truncated.onnx", lambda m, d: open(d, "r+b").truncate(20)), "truncated?"))
    cases.append(("external data shorter than declared", _external(
        folder, "ext_short_length.onnx", lambda m, d: _set_ext(m, "length", "16")), "data shorter than its shape"))
    cases.append(("external data negative offset", _external(
        folder, "ext_negative_offset.onnx", lambda m, d: _set_ext(m, "offset", "-8")), "negative offset"))
    cases.append(("external data past the end", _external(
        folder, "ext_offset_past_end.onnx", lambda m, d: _set_ext(m, "offset", "4096")), "truncated?"))
    cases.append(("external data in parent folder", _external(
        folder, "ext_parent.onnx", lambda m, d: _set_ext(m, "location", "../secret.data")),
        "outside the model's folder"))
    cases.append(("external data absolute path", _external(
        folder, "ext_absolute.onnx", lambda m, d: _set_ext(m, "location", "/etc/passwd")), "an absolute path"))

    def symlink(m, d):
        os.rename(d, d + ".real")
        os.symlink(os.path.basename(d) + ".real", d)
    cases.append(("external data behind a symlink", _external(folder, "ext_symlink.onnx", symlink),
                  "a symbolic link"))

    def to_dir(m, d):
        os.remove(d)
        os.makedirs(d)
    cases.append(("external data is a folder", _external(folder, "ext_folder.onnx", to_dir), "file not found"))
    return cases


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "bad_inputs"
    for name, path, expect in build(out):
        print(f"{name:40} {os.path.relpath(path)}  ->  '{expect}'")
