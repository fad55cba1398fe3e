"""One FC layer cut out of its model, so that its rewrite can be checked on its own.

The cut-out model holds the layer's nodes (the Flatten of a classifier head, the DequantizeLinear of a quantized
weight, a wrapped layer's Reshapes and the nodes that compute their shapes, the FC node, a fused Add), its
constant inputs as initializers (computed weights already folded), and its activation (and any run-time bias) as
graph inputs with the shapes inference gave them. Converting it with the same options and comparing the two on
onnxruntime checks this layer's folding and layout without the rest of the model.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph.constants import Constants
from ..graph.shapes import TypeShape
from .plan import Plan


def _value_info(name: str, shapes: Dict[str, TypeShape], elem: int) -> onnx.ValueInfoProto:
    t, dims = shapes.get(name, (elem, None))
    return helper.make_tensor_value_info(name, t or elem, dims)


def _in_order(nodes: List[onnx.NodeProto]) -> List[onnx.NodeProto]:
    """`nodes` with every producer before its readers (a wrapped layer's shape nodes are listed bottom up)."""
    made = {o: n for n in nodes for o in n.output if o}
    done: Dict[int, onnx.NodeProto] = {}

    def visit(node: onnx.NodeProto) -> None:
        if id(node) in done:
            return
        for i in node.input:
            if i in made and made[i] is not node:
                visit(made[i])
        done[id(node)] = node
    for n in nodes:
        visit(n)
    return list(done.values())


def _own_shapes(nodes: List[onnx.NodeProto], plan: Plan, x: str, consts: Constants,
                opset: int) -> List[onnx.NodeProto]:
    """A copy of `nodes` in which each Reshape whose target shape the model computes elsewhere (a shape shared with
    other nodes, say) computes it from the layer's own input, as the rule proved it to be: a flatten or a wrapped
    layer's Reshape before to [-1, K], a wrapped layer's Reshape after to x's leading dims and N. As graph inputs
    those shapes would take random values and the layer would not run on its own."""
    before = {id(n) for n in plan.bypassed} | {id(n) for n in plan.layer.before(plan) if n.op_type in ("Flatten", "Reshape")}
    after = {id(n) for n in plan.absorbed}
    out: List[onnx.NodeProto] = []
    for node in nodes:
        runtime = node.op_type == "Reshape" and len(node.input) > 1 and consts.value(node.input[1]) is None
        if not runtime or id(node) not in before | after or opset < 5:
            out.append(node)
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        shape = copy.input[1] = node.input[1] + "_isolated"
        if id(node) in before:
            out.append(helper.make_node("Constant", [], [shape], value=numpy_helper.from_array(
                np.array([-1, plan.k], np.int64))))
        elif opset >= 15:
            out += [helper.make_node("Shape", [x], [shape + "_lead"], start=0, end=-1),
                    helper.make_node("Constant", [], [shape + "_n"],
                                     value=numpy_helper.from_array(np.array([plan.n], np.int64))),
                    helper.make_node("Concat", [shape + "_lead", shape + "_n"], [shape], axis=0)]
        else:
            out.append(node)   # (older opsets: left as it is; the layer may then go unchecked, and says so)
            continue
        out.append(copy)
    return out


def layer_model(plan: Plan, consts: Constants, shapes: Dict[str, TypeShape], opset: int,
                ir_version: int) -> Optional[onnx.ModelProto]:
    cand = plan.cand
    quantize = consts.index.producer.get(plan.quant.q) if plan.quant and plan.quant.float_source else None
    nodes = _in_order(plan.layer.before(plan) + ([quantize] if quantize else [])
                      + ([plan.quant.node] + plan.quant.through if plan.quant and plan.quant.node else [])
                      + plan.bypassed + [cand.node] + plan.absorbed
                      + ([cand.add] if plan.fuse_add else []))
    x = plan.layer.input(plan)
    nodes = _own_shapes(nodes, plan, x, consts, opset)
    produced = {o for n in nodes for o in n.output}
    x_info = _value_info(x, shapes, plan.dtype)
    if x == cand.x:   # the dims the check established (K at least) where inference left a symbol or nothing
        elem, dims = shapes.get(x, (plan.dtype, None))
        dims = [p if isinstance(p, int) else d for d, p in zip(dims, plan.x_dims)] \
            if dims is not None and len(dims) == len(plan.x_dims) else list(plan.x_dims)
        x_info = helper.make_tensor_value_info(x, elem or plan.dtype, dims)
    inputs, inits = [x_info], []
    seen = {x}
    for n in nodes:
        for name in n.input:
            if not name or name in seen or name in produced:
                continue
            seen.add(name)
            value = consts.value(name)
            if value is None:
                inputs.append(_value_info(name, shapes, plan.dtype))
            else:
                inits.append(numpy_helper.from_array(value, name))
    graph = helper.make_graph(nodes, "layer", inputs, [_value_info(plan.output, shapes, plan.dtype)], inits)
    domains = sorted({n.domain for n in nodes if n.domain not in ("", "ai.onnx")})   # contrib ops: version 1
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                              + [helper.make_opsetid(d, 1) for d in domains])
    model.ir_version = max(ir_version, 4)
    return model
