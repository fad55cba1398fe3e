"""Keep QuantizeLinear next to the Conv in quantized (QDQ) models.

QDQ-aware compilers read a quantized Conv as DequantizeLinear -> Conv -> QuantizeLinear. The way out of the image
layout puts Reshape/Transpose between the Conv and the QuantizeLinear that follows it. A per-tensor QuantizeLinear
commutes with them (it maps each value on its own), so it moves to the chain's start:

    Conv -> Reshape -> Transpose -> QuantizeLinear      becomes      Conv -> QuantizeLinear -> Reshape -> Transpose

and the layout work runs on the integers. (The way in is handled when it is made: rewrite.py lays out an
activation's integers and dequantizes after.) Only chains that contain a node the pass added are touched.
"""
from __future__ import annotations

from typing import Dict, List, Set

import onnx

from .constants import Constants
from .cleanup import drop_value_info
from .graph_index import producers, read_counts

LAYOUT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")


def per_tensor(node: onnx.NodeProto, consts: Constants) -> bool:
    """A QuantizeLinear or DequantizeLinear with one scale and zero point: it commutes with layout ops."""
    if any(a.name == "block_size" and a.i for a in node.attribute):
        return False
    for i in node.input[1:]:
        value = consts.value(i) if i else None
        if i and (value is None or value.size != 1):
            return False
    return True


def quantize_before_layout(graph: onnx.GraphProto, added: Set[str], consts: Constants) -> None:
    """Move each per-tensor QuantizeLinear that ends a chain of layout nodes (one of them added by the pass) to the
    chain's start."""
    nodes = list(graph.node)
    counts = read_counts(nodes, graph)
    producer = producers(nodes)
    before: Dict[int, onnx.NodeProto] = {}   # chain start -> the QuantizeLinear that now runs just before it
    retyped: Set[str] = set()
    for q in nodes:
        if q.op_type != "QuantizeLinear" or q.domain not in ("", "ai.onnx") or not per_tensor(q, consts):
            continue
        chain: List[onnx.NodeProto] = []
        cur = producer.get(q.input[0])
        while cur is not None and cur.op_type in LAYOUT_OPS and cur.domain in ("", "ai.onnx") \
                and len(cur.output) == 1 and counts.get(cur.output[0]) == 1 and id(cur) not in before:
            chain.insert(0, cur)
            cur = producer.get(cur.input[0])
        if not chain or not any(n.name in added for n in chain):
            continue
        out = q.output[0]
        integers = out + "_before_layout"
        q.input[0], q.output[0] = chain[0].input[0], integers   # quantize the chain's input ...
        chain[0].input[0] = integers                             # ... lay out the integers ...
        chain[-1].output[0] = out                                # ... under the quantized tensor's name
        before[id(chain[0])] = q
        retyped.update(n.output[0] for n in chain[:-1])
    drop_value_info(graph, retyped)  # those tensors now hold integers: a float value_info would be wrong
    if before:
        moved = {id(q) for q in before.values()}
        order: List[onnx.NodeProto] = []
        for node in nodes:
            if id(node) in moved:
                continue
            if id(node) in before:
                order.append(before[id(node)])
            order.append(node)
        del graph.node[:]
        graph.node.extend(order)
