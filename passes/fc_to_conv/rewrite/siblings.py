"""The pass's 1x1 Convs that read one image, as one Conv with their weights side by side and a Split of its
channels, for a target that wants it (onnxruntime; targets.py).

An attention's q, k and v layers, an MLP's gate and up, read one activation and share its way in. onnxruntime
folds that way's Transpose into the reorder before its NCHWc Conv only when a single Conv reads it, and puts a
reorder after each Conv: three layers on one image ran a Transpose, a reorder in and three reorders out. As one
Conv of N1 + N2 + N3 channels, the Transpose folds, one reorder leaves, and a Split on axis 1 gives each part
under its Conv's output name (what the ways out, merged with the heads split already, read).

    W = concat(W1, W2, ...) on axis 0      [N1 + N2 + ..., K, 1, 1]
    B = concat(B1 or 0, B2 or 0, ...)      (none when no Conv has one)
    Conv(x, W, B) -> Split(axis 1, [N1, N2, ...]) -> y1, y2, ...

Only float Convs the pass made, 1x1 with no padding, stride, dilation or group, whose weights (and biases) are
initializers that no other node reads, fuse: a weight that layers share stays one copy, and a quantized Conv's
weight comes through its DequantizeLinear and stays.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import onnx
from onnx import helper

from ..graph.constants import Constants
from .cleanup import drop_unused_initializers
from .emit import Emitter


def _plain(node: onnx.NodeProto, initializers: Dict[str, onnx.TensorProto]) -> Optional[Tuple]:
    """The key siblings share (input, dtype, K), or None for a Conv that does not fuse."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    w = initializers.get(node.input[1]) if len(node.input) > 1 else None
    if w is None or len(w.dims) != 4 or list(w.dims[2:]) != [1, 1] \
            or w.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in initializers:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    plain = {"kernel_shape": [1, 1], "group": 1, "pads": [0] * 4, "strides": [1, 1], "dilations": [1, 1]}
    if any(k not in plain and k != "auto_pad" or k in plain and v != plain[k] for k, v in attrs.items()) \
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        return None
    return node.input[0], w.data_type, w.dims[1]


def fuse_siblings(graph: onnx.GraphProto, added: Set[str], consts: Constants, em: Emitter
                  ) -> Dict[str, List[str]]:
    """Fuse each group of sibling Convs in `graph` (module docstring); returns each new Conv's name -> the names
    of the Convs it replaced."""
    reads: Dict[str, int] = {}
    for node in graph.node:
        for i in set(node.input):
            reads[i] = reads.get(i, 0) + 1
    initializers = {t.name: t for t in graph.initializer if reads.get(t.name) == 1}   # a shared weight stays shared
    groups: Dict[Tuple, List[onnx.NodeProto]] = {}
    for node in graph.node:
        key = _plain(node, initializers) if node.name in added else None
        if key is not None:
            groups.setdefault(key, []).append(node)
    groups = {k: g for k, g in groups.items() if len(g) > 1}
    if not groups:
        return {}
    first = {id(g[0]): g for g in groups.values()}
    gone = {id(n) for g in groups.values() for n in g[1:]}
    nodes, read, fused = [], set(), {}
    for node in graph.node:
        if id(node) in first:
            nodes.extend(_fused(first[id(node)], consts, em))
            fused[nodes[-2].name] = [n.name for n in first[id(node)]]
            read.update(i for n in first[id(node)] for i in n.input[1:] if i)
        elif id(node) not in gone:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    drop_unused_initializers(graph, read, consts.ir_version)
    return fused


def _fused(convs: List[onnx.NodeProto], consts: Constants, em: Emitter) -> List[onnx.NodeProto]:
    weights = [consts.value(c.input[1]) for c in convs]
    sizes = [w.shape[0] for w in weights]
    inputs = [convs[0].input[0], em.constant(convs[0].input[1] + "_siblings", np.concatenate(weights))]
    if any(len(c.input) > 2 and c.input[2] for c in convs):
        biases = [consts.value(c.input[2]) if len(c.input) > 2 and c.input[2] else np.zeros(n, weights[0].dtype)
                  for c, n in zip(convs, sizes)]
        inputs.append(em.constant(convs[0].input[2] + "_siblings" if len(convs[0].input) > 2 and convs[0].input[2]
                                  else convs[0].name + "_bias_siblings", np.concatenate(biases)))
    name = em.names.fresh("_".join(c.name for c in convs[:1]) + "_siblings")
    out = em.names.fresh(convs[0].output[0] + "_siblings")
    conv = helper.make_node("Conv", inputs, [out], name=name, kernel_shape=[1, 1])
    outs = [c.output[0] for c in convs]
    split_name = em.names.fresh(name + "_split")
    if em.opset >= 13:
        split = helper.make_node("Split", [out, em.shape(sizes)], outs, name=split_name, axis=1)
    else:
        split = helper.make_node("Split", [out], outs, name=split_name, axis=1, split=sizes)
    em.added.update((conv.name, split.name))
    return [conv, split]
