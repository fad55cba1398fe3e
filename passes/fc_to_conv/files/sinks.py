"""Where the pass puts the data of the new weights it makes: the Sink protocol and the in-memory sink.

A sink takes a new initializer's data as soon as it is folded, so that the data never enters protobuf's arena
next to the original weights (upb keeps every byte assigned to a model until the whole model is freed). The
TensorProto stays in the graph with its name, type and dims and is marked EXTERNAL, pointing at the sink.

- external.DataSink appends the data to the output's external data file (models written with external data);
- HeldData keeps it as arrays until canonical.write() puts them into the single-file output.
"""
from __future__ import annotations

from typing import Dict, Optional, Protocol

import numpy as np
import onnx


THRESHOLD = 1024      # bytes: smaller constants stay inline in the graph


class Sink(Protocol):
    def put(self, t: onnx.TensorProto, value: np.ndarray) -> None:
        """Take `value` as the data of tensor `t` (name, type and dims already set) and mark `t` as held here."""

    def holds(self, t: onnx.TensorProto) -> bool:
        """Whether `t`'s data is in this sink."""

    def get(self, t: onnx.TensorProto) -> Optional[np.ndarray]:
        """`t`'s data, when this sink holds it (the pass reads its own new constants back: a scale, say)."""

    def close(self) -> None:
        """The output is written: flush, or let go of, what the sink holds."""


def mark(t: onnx.TensorProto, location: str, **where: int) -> None:
    """Make `t` refer to data outside the ModelProto."""
    t.ClearField("raw_data")
    del t.external_data[:]
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    for key, value in where.items():
        t.external_data.add(key=key, value=str(value))


def location_of(t: onnx.TensorProto) -> Optional[str]:
    if t.data_location != onnx.TensorProto.EXTERNAL:
        return None
    return next((e.value for e in t.external_data if e.key == "location"), None)


class HeldData:
    """New weights kept in memory as arrays, by tensor name, for a single-file output."""

    LOCATION = "fc2conv:held"   # not a file: a marker that no reader outside this process ever sees

    def __init__(self):
        self._arrays: Dict[str, np.ndarray] = {}

    def put(self, t: onnx.TensorProto, value: np.ndarray) -> None:
        self._arrays[t.name] = value
        mark(t, self.LOCATION)

    def holds(self, t: onnx.TensorProto) -> bool:
        return location_of(t) == self.LOCATION and t.name in self._arrays

    def get(self, t: onnx.TensorProto) -> Optional[np.ndarray]:
        return self._arrays[t.name] if self.holds(t) else None

    def close(self) -> None:
        self._arrays.clear()
