"""One FC layer cut out of its model, so that its rewrite can be checked on its own.

The cut-out model holds the layer's nodes (the Flatten of a classifier head, the DequantizeLinear of a quantized
weight, the FC node, a fused Add), its
constant inputs as initializers (computed weights already folded), and its activation (and any run-time bias) as
graph inputs with the shapes inference gave them. Converting it with the same options and comparing the two on
onnxruntime checks this layer's folding and layout without the rest of the model.
"""
from __future__ import annotations

from typing import Dict, Optional

import onnx
from onnx import helper, numpy_helper

from .rules import Plan
from .constants import Constants
from .shapes import TypeShape


def _value_info(name: str, shapes: Dict[str, TypeShape], elem: int) -> onnx.ValueInfoProto:
    t, dims = shapes.get(name, (elem, None))
    return helper.make_tensor_value_info(name, t or elem, dims)


def layer_model(plan: Plan, consts: Constants, shapes: Dict[str, TypeShape], opset: int,
                ir_version: int) -> Optional[onnx.ModelProto]:
    cand = plan.cand
    quantize = consts.index.producer.get(plan.quant.q) if plan.quant and plan.quant.float_source else None
    nodes = ([plan.head.flatten] + plan.head.through if plan.head else []) + ([quantize] if quantize else []) \
        + ([plan.quant.node] if plan.quant else []) + [cand.node] + ([cand.add] if plan.fuse_add else [])
    x = plan.head.map if plan.head else cand.x
    produced = {o for n in nodes for o in n.output}
    inputs, inits = [_value_info(x, shapes, plan.dtype)], []
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = max(ir_version, 4)
    return model
