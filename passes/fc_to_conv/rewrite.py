"""Rewrite: replace checked FC layers by Conv nodes, in place, and drop what they leave unused.

Runs only on Plans the check accepted. For each one:
    image = layout in (activation)                 (layout.py)
    y     = Conv(image, W_conv[, b_conv])           kernel 1x1, weights folded by fold.py
    out   = layout out (y)  [+ post Add of a row-varying Gemm C]
The last node writes the layer's original output tensor, so every reader and graph output stays wired.
The new nodes take the replaced node's place in the node list, which keeps the list topologically sorted.
A weight shared by several layers is folded once per distinct transform (same source, transB and alpha); the
original weight, its Constant node and any folded producers are removed only when nothing else reads them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import onnx

from .check import Plan
from .constants import Constants
from .emit import Emitter
from .graph_index import GraphIndex
from .layout import to_image


@dataclass
class Converted:
    name: str
    op: str
    input_shape: list
    weight_shape: list
    conv: str
    conv_weight_shape: list
    layout: str
    dtype: str
    fused_add: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def _emit_layer(em: Emitter, plan: Plan, layout: str, weights: Dict[tuple, str]) -> str:
    cand = plan.cand
    hint = cand.node.name or plan.output
    image, back = to_image(em, plan, layout)
    if plan.weight_key not in weights:
        weights[plan.weight_key] = em.constant(cand.w + "_conv", plan.weight)
    inputs = [image, weights[plan.weight_key]]
    if plan.bias is not None:
        if plan.bias_key not in weights:
            weights[plan.bias_key] = em.constant((cand.c or cand.w) + "_conv_bias", plan.bias)
        inputs.append(weights[plan.bias_key])
    conv_name = em.index.fresh(hint + "_conv")
    conv_out = em.index.fresh(plan.output + "_conv")
    em.nodes.append(onnx.helper.make_node("Conv", inputs, [conv_out], name=conv_name, kernel_shape=[1, 1]))
    if plan.post_add is None:
        back(conv_out, plan.output)
        return conv_name
    rows = em.index.fresh(plan.output + "_rows")
    back(conv_out, rows)
    if isinstance(plan.post_add, np.ndarray):
        term = em.constant(cand.c + "_post", plan.post_add)
    elif plan.post_scale != 1.0:
        beta = em.constant(cand.node.output[0] + "_beta", np.array(plan.post_scale, dtype=plan.weight.dtype))
        term = em.node("Mul", [plan.post_add, beta], hint + "_beta_c")
    else:
        term = plan.post_add
    em.node("Add", [rows, term], hint + "_bias", plan.output)
    return conv_name


def rewrite(graph: onnx.GraphProto, index: GraphIndex, consts: Constants, plans: List[Plan], em: Emitter,
            layout: str) -> List[Converted]:
    replaced: Dict[int, List[onnx.NodeProto]] = {}
    removed: set = set()
    weights: Dict[tuple, str] = {}
    done: List[Converted] = []
    for plan in plans:
        cand = plan.cand
        em.begin()
        conv = _emit_layer(em, plan, layout, weights)
        replaced[id(cand.node)] = list(em.nodes)
        index.remove_node(cand.node)
        if plan.fuse_add:
            removed.add(id(cand.add))
            index.remove_node(cand.add)
        for node in em.nodes:
            index.add_node(node)
        done.append(Converted(cand.name, cand.op, list(plan.x_dims), [plan.k, plan.n] if not cand.trans_b
                              else [plan.n, plan.k], conv, list(plan.weight.shape), layout, str(plan.weight.dtype),
                              (cand.add.name or cand.add.output[0]) if plan.fuse_add else None, plan.notes))

    dead = _unused_sources(index, consts, plans)
    new_nodes: List[onnx.NodeProto] = []
    for node in graph.node:
        key = id(node)
        if key in replaced:
            new_nodes.extend(replaced[key])
        elif key not in removed and key not in dead:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)

    gone = {p.cand.node.output[0] for p in plans if p.fuse_add}
    gone |= {out for node in dead.values() for out in node.output}
    sources = {name for p in plans for name in (p.cand.w, p.cand.c) if name}
    sources |= {i for node in dead.values() for i in node.input if i}
    dead_inits = {name for name in sources if name in index.initializers and not index.is_used(name)}
    if dead_inits:
        keep = [t for t in graph.initializer if t.name not in dead_inits]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        if consts.ir_version < 4:  # there, every initializer is also listed as a graph input
            inputs = [i for i in graph.input if i.name not in dead_inits]
            del graph.input[:]
            graph.input.extend(inputs)
        for name in dead_inits:
            del index.initializers[name]
    gone |= dead_inits
    if gone:
        vi = [v for v in graph.value_info if v.name not in gone]
        del graph.value_info[:]
        graph.value_info.extend(vi)
    graph.initializer.extend(em.initializers)
    if consts.ir_version < 4:
        graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in em.initializers)
    em.initializers = []
    return done


def _unused_sources(index: GraphIndex, consts: Constants, plans: List[Plan]) -> Dict[int, onnx.NodeProto]:
    """Constant and folded nodes that computed the rewritten layers' weights and biases and are now unread."""
    dead: Dict[int, onnx.NodeProto] = {}
    for plan in plans:
        for name in (plan.cand.w, plan.cand.c if (plan.fuse_add or plan.bias is not None) else None):
            if not name:
                continue
            for node in consts.source_nodes(name):
                if id(node) in dead or any(index.is_used(o) for o in node.output):
                    continue
                dead[id(node)] = node
                index.remove_node(node)
    return dead
