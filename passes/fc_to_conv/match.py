"""Match: find the fully connected layers of a graph. Changes nothing and judges nothing.

Patterns:
    Gemm(A, B[, C])                      -> Candidate(op="Gemm")
    MatMul(X, B)                         -> Candidate(op="MatMul")
    Add(MatMul(X, B), c) or Add(c, MatMul(X, B)), the MatMul output read by that Add alone
                                         -> Candidate(op="MatMul", add=<the Add>)
Whether B is a constant, whether c is a per-channel bias, and everything else that decides if the layer can be
rewritten is the check's business (check.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import onnx
from onnx import helper

from .graph_index import GraphIndex

FC_OPS = ("Gemm", "MatMul")


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


@dataclass
class Candidate:
    node: onnx.NodeProto
    op: str
    x: str                       # the activation (Gemm's A)
    w: str                       # the weight (Gemm's B)
    c: Optional[str] = None      # Gemm's C, or the Add's other operand
    add: Optional[onnx.NodeProto] = None
    trans_a: bool = False
    trans_b: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    key: str = ""                # where the node sits ("<scope>#<position>"): stable across runs of the pass

    @property
    def name(self) -> str:
        return self.node.name or self.node.output[0]


def _fusable_add(node: onnx.NodeProto, index: GraphIndex) -> Optional[onnx.NodeProto]:
    out = node.output[0]
    readers = index.consumers.get(out, [])
    if out in index.graph_outputs or len(readers) != 1:
        return None
    add = readers[0]
    if add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.input) != 2:
        return None
    if add.input[0] == add.input[1]:
        return None
    return add


def find_candidates(nodes: List[onnx.NodeProto], index: GraphIndex) -> List[Candidate]:
    found: List[Candidate] = []
    for node in nodes:
        if node.op_type not in FC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Gemm":
            c = node.input[2] if len(node.input) > 2 and node.input[2] else None
            found.append(Candidate(node, "Gemm", node.input[0], node.input[1], c,
                                   trans_a=bool(attr(node, "transA", 0)), trans_b=bool(attr(node, "transB", 0)),
                                   alpha=float(attr(node, "alpha", 1.0)), beta=float(attr(node, "beta", 1.0))))
        else:
            add = _fusable_add(node, index)
            c = None
            if add is not None:
                c = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            found.append(Candidate(node, "MatMul", node.input[0], node.input[1], c, add=add))
    return found
