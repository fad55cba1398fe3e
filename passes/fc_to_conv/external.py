"""Tensor data in external files, read and written as a stream.

A model with external data is converted without ever loading its weights into the ModelProto: protobuf (upb)
keeps every byte assigned to a message in the model's arena until the whole model is freed, so a weight loaded
and then replaced would stay in memory twice. Instead:
- read_tensor() reads one tensor's values straight from its file when the pass folds it;
- DataSink appends each new (folded) weight to the output's data file as it is made and returns the reference;
- stream_model() writes the result: tensors still pointing at the input's files are copied to the output's data
  file in chunks, and the ModelProto, now small, is serialized beside it.
Peak memory is then about one weight plus what onnxruntime holds, whatever the model's size.

A model without external data is written the same way, as one file (FragmentSink, stream_inline): protobuf
merges repeated occurrences of a message field (the spec: "the parser merges multiple instances of the same field,
as if with MergeFrom"), so the output is a sequence of graph fragments holding one initializer each (the new
weights written as they are made, then the ones kept), then the model's other fields and its graph without
initializers. Every protobuf parser reads it as one model; no serialized copy of the whole model is ever made,
and no byte is written twice.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from .graph_index import tensors

CHUNK = 64 * 2**20
ALIGN = 4096          # onnxruntime can map aligned tensors
THRESHOLD = 1024      # bytes: smaller tensors stay inline


def is_external(t: onnx.TensorProto) -> bool:
    return t.data_location == onnx.TensorProto.EXTERNAL


def read_tensor(t: onnx.TensorProto, base_dir: Optional[str]) -> np.ndarray:
    """The tensor's values; external data is read from its file without touching the TensorProto."""
    if not is_external(t):
        return numpy_helper.to_array(t)
    info = external_data_helper.ExternalDataInfo(t)
    dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
    count = int(np.prod(t.dims, dtype=np.int64)) if t.dims else 1
    with open(os.path.join(base_dir or ".", info.location), "rb") as f:
        f.seek(info.offset or 0)
        value = np.fromfile(f, dtype=dtype, count=count)
    return value.reshape(tuple(t.dims))


class DataSink:
    """The output's external data file, appended to as new weights are made."""

    def __init__(self, path: str, location: str):
        self.path, self.location = path, location
        self._file = open(path, "wb")
        self.offset = 0

    def _pad(self) -> None:
        pad = (-self.offset) % ALIGN
        if pad:
            self._file.write(b"\0" * pad)
            self.offset += pad

    def _refer(self, t: onnx.TensorProto, offset: int, length: int) -> None:
        t.ClearField("raw_data")
        del t.external_data[:]
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(offset)), ("length", str(length))):
            t.external_data.add(key=key, value=value)

    def put(self, t: onnx.TensorProto, value: np.ndarray) -> None:
        """Write `value` as the data of tensor `t` (name, type and dims already set)."""
        self._pad()
        start = self.offset
        data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False)
        data.tofile(self._file)
        self.offset += data.nbytes
        self._refer(t, start, data.nbytes)

    def copy_from(self, t: onnx.TensorProto, base_dir: str) -> None:
        """Move an external tensor of the input into this file, in chunks."""
        info = external_data_helper.ExternalDataInfo(t)
        self._pad()
        start, length = self.offset, info.length
        with open(os.path.join(base_dir, info.location), "rb") as src:
            src.seek(info.offset or 0)
            if length is None:
                length = os.fstat(src.fileno()).st_size - (info.offset or 0)
            left = length
            while left:
                block = src.read(min(CHUNK, left))
                if not block:
                    raise OSError(f"external data of '{t.name}' ended early")
                self._file.write(block)
                left -= len(block)
        self.offset += length
        self._refer(t, start, length)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def holds(self, t: onnx.TensorProto) -> bool:
        return is_external(t) and any(e.key == "location" and e.value == self.location for e in t.external_data)


def stream_model(model: onnx.ModelProto, path: str, sink: DataSink, base_dir: Optional[str]) -> None:
    """Write `model` to `path`: every tensor still in the input's files, or inline and large, goes to the sink."""
    for t in tensors(model.graph):
        if is_external(t):
            if sink.holds(t):
                continue  # made by this run
            sink.copy_from(t, base_dir or ".")
        elif len(t.raw_data) >= THRESHOLD:
            sink.put(t, numpy_helper.to_array(t))
    sink.close()
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _header(number: int, length: int) -> bytes:
    """The key and length of a length-delimited protobuf field of `length` bytes."""
    return _varint(number << 3 | 2) + _varint(length)


def _write_initializer(f, payload: bytes) -> None:
    """One graph fragment holding one initializer: GraphProto field `graph` { field `initializer` { payload } }."""
    inner = _header(_INITIALIZER, len(payload))
    f.write(_header(_GRAPH, len(inner) + len(payload)))
    f.write(inner)
    f.write(payload)


_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number


def _copy_except(source, target, skip: str) -> None:
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if repeated:
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def stream_inline(model: onnx.ModelProto, path: str, sink: "FragmentSink", base_dir: Optional[str]) -> None:
    """Finish the single-file output that `sink` began: the initializers it does not hold yet, one fragment each,
    then the model without its initializers."""
    shell = onnx.ModelProto()
    _copy_except(model, shell, "graph")
    graph = onnx.GraphProto()
    _copy_except(model.graph, graph, "initializer")
    f = sink.file
    for t in model.graph.initializer:
        if sink.holds(t):
            continue  # written when it was made
        if is_external(t):
            inline = onnx.TensorProto()
            _copy_except(t, inline, "external_data")
            inline.data_location = onnx.TensorProto.DEFAULT
            inline.raw_data = read_tensor(t, base_dir).tobytes()
            _write_initializer(f, inline.SerializeToString())
        else:
            _write_initializer(f, t.SerializeToString())
    f.write(shell.SerializeToString())
    payload = graph.SerializeToString()
    f.write(_header(_GRAPH, len(payload)))
    f.write(payload)
    sink.close()


class FragmentSink(DataSink):
    """The single-file output itself, begun during the pass: each new weight is written as a complete initializer
    fragment as soon as it is made, and its TensorProto in the graph only marks it as written."""

    MARK = "fc2conv:written"

    def __init__(self, path: str):
        self.path, self.location = path, self.MARK
        self.file = open(path, "wb")
        self._names = set()

    def put(self, t: onnx.TensorProto, value: np.ndarray) -> None:
        full = onnx.TensorProto()
        full.name, full.data_type = t.name, t.data_type
        full.dims.extend(t.dims)
        full.raw_data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        _write_initializer(self.file, full.SerializeToString())
        self._names.add(t.name)
        t.data_location = onnx.TensorProto.EXTERNAL
        t.external_data.add(key="location", value=self.MARK)

    def holds(self, t: onnx.TensorProto) -> bool:
        return t.name in self._names and is_external(t)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
