"""Makes the new nodes and constants of a rewrite, with fresh names and the right operator versions.

Constants become initializers, except below IR version 4, where every initializer must also be a graph input:
there they become Constant nodes, so the graph's inputs stay as they were.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph_index import GraphIndex


class Emitter:
    def __init__(self, index: GraphIndex, opset: int, ir_version: int):
        self.index = index
        self.opset = opset
        self.constant_nodes = ir_version < 4
        self.nodes: List[onnx.NodeProto] = []          # for the node being rewritten, in order
        self.initializers: List[onnx.TensorProto] = []  # for the whole run
        self._shapes = {}

    def begin(self) -> None:
        self.nodes = []

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.index.fresh(hint)
        tensor = numpy_helper.from_array(value, name)
        if self.constant_nodes:
            self.nodes.append(helper.make_node("Constant", [], [name], name=self.index.fresh(name + "_const"),
                                               value=tensor))
        else:
            self.initializers.append(tensor)
        return name

    def shape(self, dims: Sequence[int]) -> str:
        """An int64 shape constant, one per distinct value (only where initializers are used)."""
        key = tuple(int(d) for d in dims)
        if self.constant_nodes or key not in self._shapes:
            name = self.constant("fc2conv_shape_" + "_".join(str(d).replace("-", "m") for d in key),
                                 np.array(key, dtype=np.int64))
            if self.constant_nodes:
                return name
            self._shapes[key] = name
        return self._shapes[key]

    def node(self, op: str, inputs: Sequence[str], hint: str, output: Optional[str] = None, **attrs) -> str:
        out = output or self.index.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self.index.fresh(hint), **attrs))
        return out

    def reshape(self, x: str, dims: Sequence[int], hint: str, output: Optional[str] = None) -> str:
        if self.opset < 5:  # Reshape-1 takes its shape as an attribute
            return self.node("Reshape", [x], hint, output, shape=[int(d) for d in dims])
        return self.node("Reshape", [x, self.shape(dims)], hint, output)

    def transpose(self, x: str, perm: Sequence[int], hint: str, output: Optional[str] = None) -> str:
        return self.node("Transpose", [x], hint, output, perm=list(perm))

    def shape_prefix(self, x: str, keep: int, hint: str) -> str:
        """The first `keep` dims of x's shape, as a 1-D int64 tensor."""
        if self.opset >= 15:
            return self.node("Shape", [x], hint, start=0, end=keep)
        shape = self.node("Shape", [x], hint)
        if self.opset >= 10:
            return self.node("Slice", [shape, self.shape([0]), self.shape([keep])], hint)
        return self.node("Slice", [shape], hint, axes=[0], starts=[0], ends=[keep])
