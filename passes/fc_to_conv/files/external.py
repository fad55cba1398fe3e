"""Tensor data in external files, read and written as a stream.

A model with external data is converted without ever loading its weights into the ModelProto: protobuf (upb)
keeps every byte assigned to a message in the model's arena until the whole model is freed, so a weight loaded
and then replaced would stay in memory twice. Instead:
- read_tensor() reads one tensor's values straight from its file when the pass folds it;
- DataSink appends each new (folded) weight to the output's data file as it is made and returns the reference;
- stream_model() writes the result: tensors still pointing at the input's files are copied to the output's data
  file in chunks, and the ModelProto, now small, is serialized beside it.
Peak memory is then about one weight plus what onnxruntime holds, whatever the model's size.

A model without external data is written as one file by canonical.py, from the new weights sinks.HeldData kept.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from ..errors import BadInput
from ..graph.graph_index import tensors
from .packed import storage_dtype, stored, stored_count, unpacked
from .sinks import THRESHOLD, location_of, mark

CHUNK = 64 * 2**20
ALIGN = 4096          # onnxruntime can map aligned tensors


def is_external(t: onnx.TensorProto) -> bool:
    return t.data_location == onnx.TensorProto.EXTERNAL


def read_tensor(t: onnx.TensorProto, base_dir: Optional[str]) -> np.ndarray:
    """The tensor's values; external data is read from its file without touching the TensorProto. Data that does
    not fill the tensor's dims is the input's fault: BadInput (exit 2), not an internal error."""
    try:
        if not is_external(t):
            return numpy_helper.to_array(t)
        info = external_data_helper.ExternalDataInfo(t)
        with open(os.path.join(base_dir or ".", info.location), "rb") as f:
            f.seek(info.offset or 0)
            raw = np.fromfile(f, dtype=storage_dtype(t.data_type), count=stored_count(t.data_type, t.dims))
        return unpacked(raw, t.data_type, t.dims)
    except ValueError as exc:
        raise BadInput(f"tensor '{t.name}' is malformed: its data does not match its dims {list(t.dims)} "
                       f"({str(exc).splitlines()[0]})") from None


class DataSink:
    """The output's external data file, appended to as new weights are made."""

    def __init__(self, path: str, location: str):
        self.location = location
        self._file = open(path, "wb")
        self.offset = 0
        self._names = set()   # of the tensors put here: the input's own data file may have the same name

    def _pad(self) -> None:
        pad = (-self.offset) % ALIGN
        if pad:
            self._file.write(b"\0" * pad)
            self.offset += pad

    def put(self, t: onnx.TensorProto, value: np.ndarray) -> None:
        """Write `value` as the data of tensor `t` (name, type and dims already set)."""
        self._pad()
        start = self.offset
        data = stored(value)
        data.tofile(self._file)
        self.offset += data.nbytes
        mark(t, self.location, offset=start, length=data.nbytes)
        self._names.add(t.name)

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
        mark(t, self.location, offset=start, length=length)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def holds(self, t: onnx.TensorProto) -> bool:
        return t.name in self._names and location_of(t) == self.location

    def get(self, t: onnx.TensorProto) -> Optional[np.ndarray]:
        if not self.holds(t):
            return None
        self._file.flush()
        info = external_data_helper.ExternalDataInfo(t)
        raw = np.fromfile(self._file.name, dtype=storage_dtype(t.data_type), count=stored_count(t.data_type, t.dims),
                          offset=info.offset or 0)
        return unpacked(raw, t.data_type, t.dims)


def stream_model(model: onnx.ModelProto, path: str, sink: DataSink, base_dir: Optional[str]) -> None:
    """Write `model` to `path`: every tensor still in the input's files, or inline and large, goes to the sink."""
    for t in [t for t in tensors(model.graph) if not sink.holds(t)]:  # those made by this run are there
        if is_external(t):
            sink.copy_from(t, base_dir or ".")
        elif len(t.raw_data) >= THRESHOLD:
            sink.put(t, numpy_helper.to_array(t))
    sink.close()
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
