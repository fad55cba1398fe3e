"""Writes a model as onnx.save does, byte for byte, with the new weights' data streamed from where it lies.

Why: compilers read ONNX files with their own protobuf parsers, and some (OpenVINO's) accept nothing but the one
canonical encoding: every field once, in field-number order, as `ModelProto.SerializeToString()` lays it out.
Why not simply serialize: the new weights are not in the ModelProto (HeldData keeps them as arrays, so that no
weight is ever copied into protobuf's arena next to the original), and upb serializes a large bytes field several
times slower than it hands it out.

A length-delimited field is its key, its length as a varint, then its bytes, so every length must be known before
its field is written. The file is laid out as

    model fields numbered below `graph`  (ir_version .. doc_string)
    key(graph) varint(len(graph))
        graph fields numbered below `initializer`  (node, name)
        per initializer: key(initializer) varint(len(t)) [t's fields below raw_data] key(raw_data) varint(n) data
                         [t's fields above raw_data]
        graph fields numbered above `initializer`  (doc_string, input, output, value_info, ...)
    model fields numbered above `graph`  (opset_import, metadata_props, functions, ...)

Sizes are known up front from the tensors' dims (`raw_bytes`); the one thing that cannot be known without copying
it out of protobuf is a stored raw_data longer than its shape needs, which the writer finds as it writes and then
starts over with measured sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Union

import numpy as np
import onnx

from .packed import stored
from .validate import raw_bytes

_SMALL = 1 << 16   # bytes: smaller tensors are simply serialized


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def header(number: int, length: int) -> bytes:
    """The key and length of a length-delimited protobuf field of `length` bytes."""
    return _varint(number << 3 | 2) + _varint(length)


def _number(message_type, name: str) -> int:
    return message_type.DESCRIPTOR.fields_by_name[name].number


_GRAPH = _number(onnx.ModelProto, "graph")
_INITIALIZER = _number(onnx.GraphProto, "initializer")
_RAW = _number(onnx.TensorProto, "raw_data")


def _repeated(field) -> bool:
    return field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED


def part(message, keep: Callable[[int], bool]):
    """A new message of the same type with only the fields whose numbers `keep` accepts. Fields left out are not
    read, so a tensor's raw_data is never copied out of protobuf here."""
    out = type(message)()
    for field in message.DESCRIPTOR.fields:
        if not keep(field.number):
            continue
        if _repeated(field):
            values = getattr(message, field.name)
            if len(values):
                getattr(out, field.name).extend(values)
        elif message.HasField(field.name):
            if field.message_type is not None:
                getattr(out, field.name).CopyFrom(getattr(message, field.name))
            else:
                setattr(out, field.name, getattr(message, field.name))
    return out


def split(message, number: int, drop=()) -> tuple:
    """The encoding of `message`'s fields numbered below and above `number` (and not in `drop`)."""
    below = part(message, lambda n: n < number and n not in drop).SerializeToString()
    above = part(message, lambda n: n > number and n not in drop).SerializeToString()
    return below, above


Data = Union[bytes, memoryview]
_EXTERNAL = {_number(onnx.TensorProto, "external_data"), _number(onnx.TensorProto, "data_location")}


@dataclass
class _Entry:
    """One initializer as it will be written: `whole` (small ones), or `below` + raw data + `above`."""
    tensor: onnx.TensorProto
    whole: Optional[bytes] = None
    below: bytes = b""
    above: bytes = b""
    raw: Optional[Callable[[], Data]] = None   # the raw data, fetched when written
    raw_size: int = 0

    @property
    def size(self) -> int:
        if self.whole is not None:
            return len(self.whole)
        return len(self.below) + len(header(_RAW, self.raw_size)) + self.raw_size + len(self.above)


class _Mismeasured(Exception):
    """A stored raw_data was longer than its tensor's shape needs: write again with measured sizes."""


def _entry(t: onnx.TensorProto, held: Optional[np.ndarray], measure: bool) -> _Entry:
    if held is not None:  # data kept outside protobuf; the tensor only marks it (external_data, data_location)
        below, above = split(t, _RAW, drop=_EXTERNAL)
        data = stored(held)
        return _Entry(t, below=below, above=above, raw=lambda: memoryview(data).cast("B"), raw_size=data.nbytes)
    if not t.HasField("raw_data") or raw_bytes(t) < _SMALL:
        return _Entry(t, whole=t.SerializeToString())
    below, above = split(t, _RAW)
    size = len(t.raw_data) if measure else raw_bytes(t)
    return _Entry(t, below=below, above=above, raw=lambda: t.raw_data, raw_size=size)


def _write_entry(f, entry: _Entry) -> None:
    f.write(header(_INITIALIZER, entry.size))
    if entry.whole is not None:
        f.write(entry.whole)
        return
    data = entry.raw()
    if len(data) != entry.raw_size:
        raise _Mismeasured()
    f.write(entry.below)
    f.write(header(_RAW, entry.raw_size))
    f.write(data)
    f.write(entry.above)


def write(model: onnx.ModelProto, path: str, held: Callable[[onnx.TensorProto], Optional[np.ndarray]]) -> None:
    """Write `model` to `path` exactly as `onnx.save` would write it once `held(t)` (the data of the main graph's
    initializers kept outside protobuf, None for the others) is put into each tensor as raw_data."""
    try:
        _write(model, path, held, measure=False)
    except _Mismeasured:
        _write(model, path, held, measure=True)


def _write(model: onnx.ModelProto, path: str, held, measure: bool) -> None:
    model_below, model_above = split(model, _GRAPH)
    graph_below, graph_above = split(model.graph, _INITIALIZER)
    entries: List[_Entry] = [_entry(t, held(t), measure) for t in model.graph.initializer]
    graph_size = len(graph_below) + len(graph_above) + sum(len(header(_INITIALIZER, e.size)) + e.size
                                                           for e in entries)
    with open(path, "wb") as f:
        f.write(model_below)
        f.write(header(_GRAPH, graph_size))
        f.write(graph_below)
        for entry in entries:
            _write_entry(f, entry)
        f.write(graph_above)
        f.write(model_above)
