"""Makes the new nodes and constants of a rewrite, with fresh names and the right operator versions.

Constants become initializers of the main graph, also for rewrites inside If/Loop/Scan bodies, which read them
from the outer scope. (Below IR version 4 every initializer is also listed as a graph input; steps.py
lists the new ones, as exporters of that era did. Constant nodes are no way around that: before opset 9 a Constant
cannot hold the int64 shapes that Reshape needs.)
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Set

import numpy as np
import onnx
from onnx import helper

from ..files.packed import stored
from ..files.sinks import THRESHOLD, Sink
from ..graph.graph_index import Names


class Emitter:
    def __init__(self, names: Names, opset: int, graph: onnx.GraphProto, sink: Optional[Sink] = None):
        self.names = names
        self.opset = opset
        self.graph = graph                        # the main graph, which holds every new constant
        self.sink = sink                          # where large new constants go when the output is streamed
        self.nodes: List[onnx.NodeProto] = []     # made since the last take() or trial(), in order
        self.initializers: List[str] = []         # names of the constants made in the whole run
        self.added: Set[str] = set()              # names of the nodes the run put into the model
        self._shapes = {}

    def take(self) -> List[onnx.NodeProto]:
        """The nodes made since the last take or trial, for the caller to put into the model: they count as added."""
        return self.keep(self.trial())

    def trial(self) -> List[onnx.NodeProto]:
        """The nodes made since the last take or trial, not (yet) counted as added: one of several tries, of which
        the caller keeps one (keep) or none. (Constants a discarded try made stay in the graph until the prune.)"""
        nodes, self.nodes = self.nodes, []
        return nodes

    def keep(self, nodes: List[onnx.NodeProto]) -> List[onnx.NodeProto]:
        """`nodes`, now counted as added (see take)."""
        self.added.update(n.name for n in nodes)
        return nodes

    def constant(self, hint: str, value: np.ndarray) -> str:
        """A new initializer of the main graph, written into it at once (no second copy of a large weight)."""
        name = self.names.fresh(hint)
        tensor = self.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        tensor.dims.extend(value.shape)
        if self.sink is not None and value.nbytes >= THRESHOLD:
            self.sink.put(tensor, value)
        else:
            tensor.raw_data = stored(value).tobytes()
        self.initializers.append(name)
        return name

    def shape(self, dims: Sequence[int]) -> str:
        """An int64 shape constant, one per distinct value."""
        key = tuple(int(d) for d in dims)
        if key not in self._shapes:
            self._shapes[key] = self.constant("fc2conv_shape_" + "_".join(str(d).replace("-", "m") for d in key),
                                              np.array(key, dtype=np.int64))
        return self._shapes[key]

    def node(self, op: str, inputs: Sequence[str], hint: str, output: Optional[str] = None, **attrs) -> str:
        out = output or self.names.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self.names.fresh(hint), **attrs))
        return out

    def again(self, node: onnx.NodeProto, x: str, hint: str) -> str:
        """`node` once more (its op, other inputs and attributes) on `x`: a DequantizeLinear re-applied after a
        layout change, say."""
        return self.again_all(node, x, [hint], hint)[0]

    def again_all(self, node: onnx.NodeProto, x: str, outputs: Sequence[str], hint: str, **changed) -> List[str]:
        """`node` once more on `x`, with an output per hint in `outputs` and the attributes in `changed` replacing
        its own (a Split on the image's channels: axis=1)."""
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        outs = [self.names.fresh(o) for o in outputs]
        self.nodes.append(helper.make_node(node.op_type, [x] + list(node.input[1:]), outs,
                                           name=self.names.fresh(hint), **{**attrs, **changed}))
        return outs

    def reshape(self, x: str, dims: Sequence[int], hint: str, output: Optional[str] = None) -> str:
        if self.opset < 5:  # Reshape-1 takes its shape as an attribute
            return self.node("Reshape", [x], hint, output, shape=[int(d) for d in dims])
        return self.node("Reshape", [x, self.shape(dims)], hint, output)

    def squeeze(self, x: str, axes: Sequence[int], hint: str, output: Optional[str] = None) -> str:
        if self.opset >= 13:  # axes became an input in opset 13
            return self.node("Squeeze", [x, self.shape(axes)], hint, output)
        return self.node("Squeeze", [x], hint, output, axes=list(axes))

    def unsqueeze(self, x: str, axes: Sequence[int], hint: str, output: Optional[str] = None) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.shape(axes)], hint, output)
        return self.node("Unsqueeze", [x], hint, output, axes=list(axes))

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
