"""The regions --tune measures as one: converted layers that share a way into the image layout, or whose image
runs from one to the next through element-wise ops (rewrite/region.py keeps it 4-D between them).

Put back alone, a layer of such a region leaves its partners converted with a way in or out of their own: on a
Falcon block (QKV and the MLP's first layer read one LayerNorm, the GELU between the MLP's two layers) each layer
put back by itself measured slower than the region as Convs, and the region put back as a whole measured as the
original. So the tuner tries each region in FC form as one, and regions alike together.

    regions(graph, keys)   the keys of the converted layers, grouped; each group in graph order
    alike(regions, layers) the regions grouped by what they hold (each layer's op, shapes and dtype, in order):
                           a transformer's blocks give one group per kind of region, which --tune decides on
                           together (BERT-base: 37 regions, 4 kinds), so that its cost grows with the kinds

Only the main graph's layers are grouped (their keys are "#<node index>"); a layer inside a subgraph is a region
of its own.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Set

import onnx

from .graph.graph_index import readers
from .rewrite.region import BINARY, UNARY

ELEMENTWISE = UNARY | BINARY


def regions(graph: onnx.GraphProto, keys: List[str]) -> List[List[str]]:
    nodes = list(graph.node)
    at = {k: int(k[1:]) for k in keys if k.startswith("#") and k[1:].isdigit() and int(k[1:]) < len(nodes)}
    parent: Dict[str, str] = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    by_input: Dict[str, str] = {}
    layer_of = {id(nodes[i]): k for k, i in at.items()}
    reader = readers(nodes)
    fixed = {t.name for t in graph.initializer} | {o for n in nodes if n.op_type == "Constant" for o in n.output}
    fixed |= {o for i in at.values() for o in nodes[i].output}   # a product of two layers' outputs (SwiGLU)
    for k, i in at.items():
        node = nodes[i]
        if node.input and node.input[0]:
            union(k, by_input.setdefault(node.input[0], k))   # one way in for every layer reading this tensor
        for other in _reached(node, reader, layer_of, fixed):
            union(k, other)
    groups: Dict[str, List[str]] = {}
    for k in keys:
        groups.setdefault(find(k), []).append(k)
    order = lambda k: at.get(k, len(nodes))
    return sorted((sorted(g, key=order) for g in groups.values()), key=lambda g: order(g[0]))


def _reached(node: onnx.NodeProto, reader, layer_of, fixed: Set[str]) -> List[str]:
    """The converted layers whose input this layer's output reaches through element-wise ops whose other operands
    are constants or layers' outputs (the ops the rewrite moves onto the image; a residual Add with the stream
    ends the image, so one block's layers do not join the next's)."""
    found, seen, todo = [], set(), list(node.output)
    walked = set(todo)
    while todo:
        tensor = todo.pop()
        for r in reader.get(tensor, []):
            if id(r) in layer_of:
                found.append(layer_of[id(r)])
            elif (r.op_type in ELEMENTWISE and r.domain in ("", "ai.onnx") and id(r) not in seen
                  and all(i == tensor or i in fixed or i in walked for i in r.input if i)):
                seen.add(id(r))
                todo.extend(r.output)
                walked.update(r.output)
    return found


def alike(groups: Sequence[List[str]], layers) -> List[List[List[str]]]:
    """`groups` (regions) put together when their layers (layers: key -> result.Converted) are the same op on
    the same shapes and dtype, in the same order; each kind in the order of its first region."""
    kinds: Dict[tuple, List[List[str]]] = {}
    for region in groups:
        signature = tuple((c.op, str(c.input_shape), str(c.weight_shape), c.dtype, c.kernel, c.conv_op,
                           c.fused_add is not None) for c in (layers[k] for k in region))
        kinds.setdefault(signature, []).append(region)
    return list(kinds.values())
