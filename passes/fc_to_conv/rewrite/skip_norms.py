"""onnxruntime's fused skip norms as the Add and the norm they fuse (for the qnn target), the same function:

    SkipSimplifiedLayerNormalization(x, skip, gamma[, bias]) -> y[, , , s]     (com.microsoft)
        s = x + skip (+ bias);  y = RMSNormalization(s, gamma, axis=-1, epsilon)             (opset 23 or later)
                                  or SimplifiedLayerNormalization(s, gamma, axis=-1, epsilon)  (default domain)
    SkipLayerNormalization(x, skip, gamma[, beta[, bias]]) -> y[, , , s]       (com.microsoft)
        s = x + skip (+ bias);  y = LayerNormalization(s, gamma[, beta], axis=-1, epsilon)   (opset 17 or later)

onnxruntime-genai's model builder and onnxruntime's transformer optimizer write the fused ops; Qualcomm's QNN EP
has no HTP kernel for either and runs them on the CPU, which splits the graph around each one, where it takes
SimplifiedLayerNormalization (default domain, as onnxruntime registers it) and LayerNormalization onto HTP
(issue 25, case 9; emulator, fp16, a 2-layer block of width 64: 1 CPU node and 2 partitions before, none and 1
after). A node whose mean or inverse-deviation output (1, 2) is read, or that is not in com.microsoft, stays.

onnx does not know SimplifiedLayerNormalization, so onnx's checker refuses a model with one: below opset 23 the
simplified norm is split only in a model that has one in the default domain already (genai's builder writes its
first and last norms so), whose checker verdict it leaves as it was; elsewhere it stays fused.
"""
from __future__ import annotations

from typing import Optional

import onnx
from onnx import helper

from ..graph.graph_index import Names, attr

FUSED = {"SkipSimplifiedLayerNormalization": "SimplifiedLayerNormalization", "SkipLayerNormalization":
         "LayerNormalization"}


def _norm(node: onnx.NodeProto, opset: int, plain_sln: bool) -> Optional[str]:
    """The norm `node` splits into, or None when it stays fused."""
    if node.domain != "com.microsoft" or node.op_type not in FUSED or len(node.input) < 3:
        return None
    if any(len(node.output) > i and node.output[i] for i in (1, 2)):
        return None
    if node.op_type == "SkipLayerNormalization":
        return FUSED[node.op_type] if opset >= 17 else None
    return "RMSNormalization" if opset >= 23 else FUSED[node.op_type] if plain_sln else None


def split_skip_norms(graph: onnx.GraphProto, opset: int, names: Names, plain_sln: bool) -> int:
    """Replace every splittable fused skip norm of `graph` by its Add (two with a bias) and its norm, in place;
    how many. `plain_sln`: the model has a default-domain SimplifiedLayerNormalization already."""
    nodes, split = [], 0
    for node in graph.node:
        norm = _norm(node, opset, plain_sln)
        if norm is None:
            nodes.append(node)
            continue
        simplified = node.op_type == "SkipSimplifiedLayerNormalization"
        inputs = list(node.input) + [""] * 2
        bias = inputs[3] if simplified else inputs[4]
        total = node.output[3] if len(node.output) > 3 and node.output[3] else names.fresh(f"{node.name}_sum")
        added = names.fresh(f"{node.name}_skip") if bias else total
        nodes.append(helper.make_node("Add", [node.input[0], node.input[1]], [added], name=names.fresh(
            f"{node.name}_add")))
        if bias:
            nodes.append(helper.make_node("Add", [added, bias], [total], name=names.fresh(f"{node.name}_bias")))
        norm_inputs = [total, node.input[2]] + ([] if simplified or not inputs[3] else [inputs[3]])
        epsilon = attr(node, "epsilon", 1e-12)
        nodes.append(helper.make_node(norm, norm_inputs, [node.output[0]], name=node.name or
                                      names.fresh("norm"), axis=-1, epsilon=epsilon))
        split += 1
    if split:
        del graph.node[:]
        graph.node.extend(nodes)
    return split
