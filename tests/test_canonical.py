"""canonical.write lays a model out byte for byte as onnx.save does, with held weights streamed in as raw_data.

The reference is always protobuf itself: the same model with the held arrays put into the tensors as raw_data,
serialized by SerializeToString (which is what onnx.save writes)."""
import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper, numpy_helper

from builders import make_model, vi
from passes.fc_to_conv.files import canonical
from passes.fc_to_conv.files.sinks import HeldData


def _model(sizes, held_every=2, extras=True):
    """A model with one initializer per size (in floats); every `held_every`-th one held outside protobuf."""
    rng = np.random.default_rng(0)
    sink, arrays, inits = HeldData(), {}, []
    for i, n in enumerate(sizes):
        value = rng.standard_normal(n).astype(np.float32)
        t = numpy_helper.from_array(value, f"w{i}")
        if extras and i % 3 == 0:
            t.doc_string = f"tensor {i}"             # a field numbered above raw_data
            t.metadata_props.add(key="k", value="v")
        inits.append(t)
        arrays[t.name] = value
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    m = make_model(nodes, [vi("x", [1])], [vi("y", [1])], inits)
    if extras:
        m.doc_string, m.producer_name, m.model_version = "doc", "test", 7
        m.graph.doc_string = "graph doc"
        m.graph.value_info.append(vi("y", [1]))
        m.metadata_props.add(key="author", value="me")
        m.functions.add(name="f", domain="local")
    for i, t in enumerate(m.graph.initializer):
        if i % held_every == 0:
            sink.put(t, arrays[t.name])
    return m, sink, arrays


def _expected(m, arrays):
    full = onnx.ModelProto()
    full.CopyFrom(m)
    for t in full.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            t.ClearField("data_location")
            del t.external_data[:]
            t.raw_data = arrays[t.name].tobytes()
    return full.SerializeToString()


@pytest.mark.parametrize("sizes", [[], [4], [4, 70000, 3, 1 << 20], [1 << 15] * 5 + [1 << 17] * 3])
def test_bytes_equal_serialize_to_string(sizes, tmp_path):
    m, sink, arrays = _model(sizes)
    path = tmp_path / "m.onnx"
    canonical.write(m, str(path), sink.get)
    data = path.read_bytes()
    assert data == _expected(m, arrays)
    assert onnx.load(str(path)).SerializeToString() == data


def test_raw_data_longer_than_its_shape_is_measured(tmp_path):
    """A stored raw_data longer than the dims need (allowed: only shorter is refused) cannot be sized from the dims;
    the writer notices while writing and starts over with measured sizes."""
    m, sink, arrays = _model([1 << 18, 1 << 18], held_every=2)
    t = m.graph.initializer[1]
    t.raw_data = t.raw_data + b"\0" * 8
    path = tmp_path / "m.onnx"
    canonical.write(m, str(path), sink.get)
    assert path.read_bytes() == _expected(m, arrays)


def test_typed_data_fields_and_strings(tmp_path):
    big = helper.make_tensor("f", onnx.TensorProto.FLOAT, [30000], np.arange(30000, dtype=np.float32).tolist())
    s = helper.make_tensor("s", onnx.TensorProto.STRING, [2], [b"a", b"bc"])
    m = make_model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", [1])], [vi("y", [1])], [big, s])
    path = tmp_path / "m.onnx"
    canonical.write(m, str(path), HeldData().get)
    assert path.read_bytes() == m.SerializeToString()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 40000), max_size=8), st.integers(1, 3), st.booleans())
def test_any_mix_of_held_and_inline_tensors(tmp_path_factory, sizes, held_every, extras):
    m, sink, arrays = _model(sizes, held_every, extras)
    path = tmp_path_factory.mktemp("c") / "m.onnx"
    canonical.write(m, str(path), sink.get)
    assert path.read_bytes() == _expected(m, arrays)


def test_held_fp16_and_big_endian_arrays_are_written_little_endian(tmp_path):
    value = np.arange(50000, dtype=">f2")
    t = onnx.TensorProto(name="h", data_type=onnx.TensorProto.FLOAT16, dims=[50000])
    m = make_model([helper.make_node("Identity", ["x"], ["y"])], [vi("x", [1])], [vi("y", [1])], [t])
    sink = HeldData()
    sink.put(m.graph.initializer[0], value)
    path = tmp_path / "m.onnx"
    canonical.write(m, str(path), sink.get)
    back = numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])
    assert back.dtype == np.float16 and np.array_equal(back, value.astype("<f2"))
    assert onnx.load(str(path)).SerializeToString() == path.read_bytes()
