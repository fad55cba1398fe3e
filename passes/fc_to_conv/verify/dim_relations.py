"""Dims a KV-cache decoder's inputs must agree on, where the names do not write them as an expression (input_dims.py
reads 'past_sequence_length + 1' itself): found from the graph, so that onnxruntime-genai's and optimum's decoders
verify with no option (issue 25, case 3).

    the mask is past + new tokens   a Concat of a cache input (its dim p on the Concat's axis) and a tensor computed
                                    from the new tokens (dim s there) makes the keys the mask covers: a 2-D integer
                                    input whose last dim is named neither p nor s is p + s long. onnxruntime-genai
                                    names them: total_sequence_length = past_sequence_length + sequence_length.
    what GroupQueryAttention needs  (com.microsoft) its past key's heads are kv_num_heads, its head size the query's
                                    width over the heads, and its batch 1: onnxruntime's kernel takes several new
                                    tokens with a past only at batch 1. A sliding-window cache (Gemma2's
                                    sliding_window_cache) holds local_window_size tokens: its past is that long.

With a past found, every second input set is one decode step: the new tokens' dim s is 1 there (the first set
prefills s tokens after a past). relations() returns {dim name: expression}, and the name of s.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import onnx

from ..graph.graph_index import attr
from ..graph.shapes import TypeShape, dims_of

GENAI = {"total_sequence_length": "past_sequence_length + sequence_length"}


def _named(dims, axis: int) -> Optional[str]:
    if dims is None or not -len(dims) <= axis < len(dims):
        return None
    d = dims[axis]
    return d if isinstance(d, str) and d.isidentifier() else None


def _past_and_new(model: onnx.ModelProto, inputs: Dict[str, List], shapes: Dict[str, TypeShape]) -> List[Tuple]:
    """(p, s) for each Concat of a cache input with computed new keys along a named axis."""
    found = []
    for node in model.graph.node:
        if node.op_type != "Concat" or len(node.input) != 2 or node.input[0] not in inputs:
            continue
        axis = attr(node, "axis", 0)
        p = _named(inputs[node.input[0]], axis)
        s = _named(shapes.get(node.input[1], (0, None))[1], axis)
        if p and s and p != s:
            found.append((p, s))
    return found


def _attention(model: onnx.ModelProto, inputs: Dict[str, List], shapes: Dict[str, TypeShape]) -> Dict[str, str]:
    """What GroupQueryAttention reads from its past key and value inputs: heads, head size, batch 1."""
    found: Dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type != "GroupQueryAttention" or node.domain != "com.microsoft" or len(node.input) < 5:
            continue
        heads, kv_heads = attr(node, "num_heads", 0), attr(node, "kv_num_heads", 0)
        width = (shapes.get(node.input[0], (0, None))[1] or [None])[-1]
        packed = not node.input[1]   # query, key and value in one tensor
        head_size = width // (heads + 2 * kv_heads if packed else heads) if isinstance(width, int) and heads else None
        window = attr(node, "local_window_size", -1) if attr(node, "sliding_window_cache", 0) else -1
        for past in node.input[3:5]:
            dims = inputs.get(past)
            if dims is None or len(dims) != 4:
                continue
            for axis, value in ((0, 1), (1, kv_heads or None), (2, window if window > 0 else None), (3, head_size)):
                name = _named(dims, axis)
                if name and value:
                    found.setdefault(name, str(value))
    return found


def relations(model: onnx.ModelProto, inputs: List[onnx.ValueInfoProto],
              shapes: Dict[str, TypeShape]) -> Tuple[Dict[str, str], Optional[str]]:
    dims = {i.name: dims_of(i.type)[1] for i in inputs}
    names = {d for ds in dims.values() for d in ds or [] if isinstance(d, str)}
    found = {n: e for n, e in GENAI.items() if n in names and all(a in names for a in e.split(" + "))}
    new = "sequence_length" if found else None
    for p, s in _past_and_new(model, dims, shapes):
        new = new or s
        for i in inputs:
            elem, d = dims_of(i.type)
            m = _named(d, -1)
            if d is not None and len(d) == 2 and elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) \
                    and m and m not in (p, s) and m in names:
                found.setdefault(m, f"{p} + {s}")
    for name, value in _attention(model, dims, shapes).items():
        found.setdefault(name, value)
    return found, new
