"""Which FC layers are an attention's projections: the Q, K and V layers whose outputs reach the attention's
activation x activation products, and the output layer that reads their result (pure analysis, edits nothing).

    products   MatMul (or Einsum) nodes whose operands are both computed at run time: the scores Q K^T and the
               context P V
    Q, K, V    an FC layer whose output reaches an operand of a product through view ops only: Reshape,
               Transpose, Squeeze, Unsqueeze, Split, Slice, Identity, Cast, Gather (a fused QKV layer split by
               index), and an Add, Sub, Mul or Div with a constant (a bias, the 1/sqrt(d) scale)
    output     an FC layer whose activation comes from a product's output through view ops only

A runtime that fuses the whole attention into one kernel finds it by these layers (ncnn's MultiHeadAttention,
made by pnnx from the original's MatMuls): targets.py can leave them alone for it.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Set

import onnx

from ..graph.constants import Constants

VIEWS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Identity", "Cast", "Gather"}
SCALING = {"Add", "Sub", "Mul", "Div"}


def projections(nodes: Iterable[onnx.NodeProto], fc_nodes: Iterable[onnx.NodeProto], consts: Constants) -> Set[int]:
    """The ids of the nodes in `fc_nodes` (FC layers: their MatMul/Gemm, or the node a rule matched) that are an
    attention's Q, K, V or output projection."""
    index = consts.index
    fc = {id(n) for n in fc_nodes}
    found: Set[int] = set()
    for node in nodes:
        if not _product(node, consts):
            continue
        for operand in node.input[:2]:
            found |= _back(operand, index, consts, fc)
        found |= _forward(node.output[0], index, consts, fc)
    return found


def product_tensors(nodes: Iterable[onnx.NodeProto], consts: Constants) -> Set[str]:
    """The tensors the activation x activation products read and make: Q, K^T and V after the heads split, the
    scores, the softmax, the context before the heads merge."""
    return {t for node in nodes if _product(node, consts) for t in list(node.input) + list(node.output) if t}


def _product(node: onnx.NodeProto, consts: Constants) -> bool:
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("MatMul", "Einsum"):
        return False
    operands = [i for i in node.input if i]
    return len(operands) == 2 and all(consts.value(i) is None for i in operands)


def _data(node: onnx.NodeProto, consts: Constants) -> Optional[str]:
    """The tensor a view op re-lays, selects or scales (its other inputs being shapes, axes, indices, or for an
    arithmetic op a constant); None for any other op."""
    if node.domain not in ("", "ai.onnx") or not node.input:
        return None
    if node.op_type in VIEWS:
        return node.input[0]
    if node.op_type in SCALING:
        computed = [i for i in node.input if i and consts.value(i) is None]
        return computed[0] if len(computed) == 1 else None
    return None


def _back(tensor: str, index, consts: Constants, fc: Set[int]) -> Set[int]:
    """The FC layer that makes `tensor` through view ops, if any (a view op has one data input: a single chain)."""
    node = index.producer.get(tensor)
    while node is not None and id(node) not in fc:
        data = _data(node, consts)
        node = index.producer.get(data) if data else None
    return {id(node)} if node is not None else set()


def _forward(tensor: str, index, consts: Constants, fc: Set[int]) -> Set[int]:
    found: Set[int] = set()
    seen: Set[str] = set()
    todo: List[str] = [tensor]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for reader in index.consumers.get(t, []):
            if id(reader) in fc:
                found.add(id(reader))
            elif _data(reader, consts) == t:
                todo.extend(o for o in reader.output if o)
    return found
