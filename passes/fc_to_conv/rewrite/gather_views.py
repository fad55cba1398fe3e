"""An identity Reshape between a Gather and the Conv it feeds (for the qnn target), the same function:

    Gather(data, indices) -> g [-> element-wise ops] -> Conv
        becomes
    Gather(data, indices) -> g -> Reshape(g, [0, 0, 0, 0]) [-> element-wise ops] -> Conv

A shape of zeros copies every dim (allowzero 0), so the Reshape returns its input whatever the dims, dynamic ones
included.

onnxruntime's QNN EP aborts the process (`stl_vector.h` `__n < this->size()` assertion) while it places a Conv that
reads a Gather's output (directly or through a Relu) downstream of a Transpose: torch's dynamo export of
torchvision's swin_t ends in `LayerNorm -> Transpose -> ReduceMean -> Reshape -> Gather(indices [1, 768, 1, 1]) ->
Reshape [1, 768] -> Gemm`, whose head fc2conv wrote as a 1x1 Conv on the Gather's output (its way in collapsed
with the model's Reshape into nothing). The original loads (5.5G emulator cycles); the converted file aborted the
EP, and a 6-node model reproduces it (issue 24). With a Reshape between the Gather and the Conv it loads, as with
the original's Reshape before its Gemm. No other target needs it, so no other target's model is touched.
"""
from __future__ import annotations

from typing import Optional, Set, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph.constants import Constants
from ..graph.graph_index import Names, producers

ELEMENTWISE = ("Relu", "Max", "Min", "Clip", "Add", "Sub", "Mul", "Div", "Sigmoid", "Tanh", "Gelu", "Erf",
               "LeakyRelu", "HardSigmoid", "HardSwish")


def _gather_reader(conv: onnx.NodeProto, producer, consts: Constants) -> Optional[Tuple[onnx.NodeProto, int]]:
    """The node on the Conv's data path that reads a Gather's output (the Conv itself or an element-wise op between
    them; each with one operand computed at run time) and the slot it reads it at, or None when the path reaches
    no Gather."""
    reader, slot = conv, 0
    while True:
        node = producer.get(reader.input[slot])
        if node is None or node.domain not in ("", "ai.onnx"):
            return None
        if node.op_type == "Gather":
            return reader, slot
        computed = _computed(node, consts)
        if node.op_type not in ELEMENTWISE or computed is None:
            return None
        reader, slot = node, list(node.input).index(computed)


def _computed(node: onnx.NodeProto, consts: Constants) -> Optional[str]:
    """The one input of `node` that is not a constant, or None when there are several or none."""
    computed = [i for i in node.input if i and consts.peek(i) is None]
    return computed[0] if len(computed) == 1 else None


def view_gathers(graph: onnx.GraphProto, added: Set[str], consts: Constants, names: Names) -> int:
    """Put an identity Reshape after the Gather that feeds each Conv the pass added to `graph`; how many."""
    old = list(graph.node)   # held, so that the id of each node stays its own
    producer = producers(old)
    placed = {}   # id(reader) -> its new Reshape, which goes just before it
    for conv in old:
        if conv.op_type != "Conv" or conv.name not in added:
            continue
        weight = consts.peek(conv.input[1])
        found = _gather_reader(conv, producer, consts)
        if found is None or weight is None or id(found[0]) in placed:
            continue
        reader, slot = found
        shape = names.fresh(f"{conv.name}_gather_view_shape")
        graph.initializer.append(numpy_helper.from_array(np.zeros(weight.ndim, np.int64), shape))
        out = names.fresh(f"{reader.input[slot]}_view")
        placed[id(reader)] = helper.make_node("Reshape", [reader.input[slot], shape], [out],
                                              name=names.fresh(f"{conv.name}_gather_view"))
        reader.input[slot] = out
    if placed:
        nodes = [new for node in old for new in ([placed[id(node)]] if id(node) in placed else []) + [node]]
        del graph.node[:]
        graph.node.extend(nodes)
    return len(placed)
