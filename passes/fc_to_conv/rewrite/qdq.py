"""The QDQ form of what the rewrite added to a quantized model: QuantizeLinear next to the Conv, and every layout op
on integers a QDQ node unit of its own.

QDQ-aware compilers read a quantized Conv as DequantizeLinear -> Conv -> QuantizeLinear. The way out of the image
layout puts Reshape/Transpose between the Conv and the QuantizeLinear that follows it. A per-tensor QuantizeLinear
commutes with them (it maps each value on its own), so it moves to the chain's start:

    Conv -> Reshape -> Transpose -> QuantizeLinear      becomes      Conv -> QuantizeLinear -> Reshape -> Transpose

and the layout work runs on the integers. (The way in is handled when it is made: writer.py lays out an
activation's integers and dequantizes after.) Only chains that contain a node the pass added are touched.

A QDQ compiler (Qualcomm's QNN HTP, through onnxruntime's node units) takes an op only inside a unit
DequantizeLinear -> op -> QuantizeLinear; a Reshape or Transpose straight on integers is refused, and with it the
whole converted graph ("... was inserted using the NHWC format ... but was not selected by that EP"). So each layout
op the pass added on a per-tensor quantized activation is wrapped with that activation's own scale and zero point:

    Q(s, z) -> Reshape -> Transpose -> DQ      becomes
    Q(s, z) -> DQ(s, z) -> Reshape -> Q(s, z) -> DQ(s, z) -> Transpose -> Q(s, z) -> DQ

which computes the same integers exactly (a layout op moves values, and Q(DQ(q)) = q with the same s and z).
onnxruntime's QDQ transformer drops such DQ -> op -> Q pairs again, so its CPU integer kernels are unchanged.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set

import onnx

from ..graph.constants import Constants
from ..graph.graph_index import Names, producers, read_counts
from .cleanup import drop_value_info

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


def quantize_before_layout(graph: onnx.GraphProto, added: Set[str], consts: Constants) -> bool:
    """Move each per-tensor QuantizeLinear that ends a chain of layout nodes (one of them added by the pass) to the
    chain's start. Whether it moved any."""
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
    return bool(before)


def _quantizer(name: str, producer: Dict[str, onnx.NodeProto], consts: Constants) -> Optional[onnx.NodeProto]:
    """The per-tensor QuantizeLinear whose integers reach `name` through layout ops only, if any."""
    node = producer.get(name)
    while node is not None and node.op_type in LAYOUT_OPS and node.domain in ("", "ai.onnx"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "QuantizeLinear" or not per_tensor(node, consts):
        return None
    return node


def layout_units(graph: onnx.GraphProto, added: Set[str], consts: Constants, names: Names) -> bool:
    """Wrap each layout op the pass added on quantized integers in DequantizeLinear / QuantizeLinear with the
    quantization of the QuantizeLinear those integers come from. Whether it wrapped any."""
    nodes = list(graph.node)
    producer = producers(nodes)
    quantizer = {id(n): _quantizer(n.input[0], producer, consts) for n in nodes
                 if n.name in added and n.op_type in LAYOUT_OPS and n.domain in ("", "ai.onnx")}
    order: List[onnx.NodeProto] = []
    for node in nodes:
        q = quantizer.get(id(node))
        if q is None:
            order.append(node)
            continue
        params = list(q.input[1:])
        real_in, real_out = names.fresh(node.input[0] + "_dq"), names.fresh(node.output[0] + "_real")
        order.append(onnx.helper.make_node("DequantizeLinear", [node.input[0]] + params, [real_in],
                                           names.fresh(node.name + "_dq"), domain=q.domain))
        order.append(node)
        q_attrs = {a.name: onnx.helper.get_attribute_value(a) for a in q.attribute}
        order.append(onnx.helper.make_node("QuantizeLinear", [real_out] + params, [node.output[0]],
                                           names.fresh(node.name + "_q"), domain=q.domain, **q_attrs))
        node.input[0], node.output[0] = real_in, real_out
    if len(order) == len(nodes):
        return False
    del graph.node[:]
    graph.node.extend(order)
    return True
