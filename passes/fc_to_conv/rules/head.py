"""Classifier heads: an FC layer fed by Flatten(axis=1) or a 2-D Reshape of a [N, C, H, W] map with static C, H, W
becomes a Conv with an H x W kernel straight on the map (the chapter's second equivalence); the Flatten goes."""
from __future__ import annotations

from typing import Dict, List, Optional

import onnx

from ..graph.constants import Constants
from ..graph.graph_index import GraphIndex, attr
from ..graph.shapes import TypeShape
from ..rewrite.qdq import per_tensor
from .layers import Head


def find_head(x: str, k: int, index: GraphIndex, shapes: Dict[str, TypeShape],
              consts: Optional[Constants] = None) -> Optional[Head]:
    """x = Flatten(map, axis=1) or Reshape(map, [N, C*H*W]) of a [N, C, H, W] map with static C, H, W; in a QDQ
    model also DequantizeLinear(QuantizeLinear(that)), per tensor: the pair commutes with the Flatten, and the
    Conv reads DequantizeLinear(QuantizeLinear(map))."""
    through = _qdq_pair(x, index, consts) if consts is not None else []
    if through:
        x = through[0].input[0]
    node = index.producer.get(x)
    if node is None or node.op_type not in ("Flatten", "Reshape") or node.domain not in ("", "ai.onnx"):
        return None
    dims = shapes.get(node.input[0], (0, None))[1]
    x_dims = shapes.get(x, (0, None))[1]
    if not dims or len(dims) != 4 or not all(isinstance(d, int) for d in dims[1:]):
        return None
    c, h, w = dims[1:]
    if c * h * w != k or not x_dims or len(x_dims) != 2 or x_dims[1] != k:
        return None
    if node.op_type == "Flatten" and attr(node, "axis", 1) not in (1, -3):
        return None
    return Head(node.input[0], (c, h, w), dims[0], node, through)


def _qdq_pair(x: str, index: GraphIndex, consts: Constants) -> List[onnx.NodeProto]:
    dq = index.producer.get(x)
    q = index.producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    if q is None or q.op_type != "QuantizeLinear" or dq.domain not in ("", "ai.onnx") \
            or q.domain not in ("", "ai.onnx") or not (per_tensor(q, consts) and per_tensor(dq, consts)) \
            or len(index.consumers.get(q.output[0], [])) != 1:
        return []
    return [q, dq]
