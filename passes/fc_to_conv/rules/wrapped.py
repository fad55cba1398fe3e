"""Reshape(x [..., K] -> [-1, K]) -> Gemm or MatMul -> Reshape(-> [..., N]) [-> Add(b)], as older exporters and
tf2onnx (Keras Dense on 3-D inputs, via Tensordot) wrap a Linear: the FC layer on x that it is, so that its Conv
reads x's image and chains of them stay 4-D as MatMul chains do.

Taken only when shape inference shows the Reshape after restores x's leading dims (the same names or sizes),
the FC reads its input untransposed, and a Gemm's C, if any, is one value per output channel; else the layer
converts on its own. The Reshape before, and the nodes that compute the Reshape-after's shape, go with it; a
per-channel Add after it is the Conv's bias.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Union

import onnx

from . import fc
from ..graph.constants import Constants
from ..graph.graph_index import GraphIndex
from .add_bias import fusable_add, fuse_bias
from .gemm import GemmRule
from .layers import Rows
from .matmul import MatMulRule
from .plan import Candidate, CheckContext, Plan, Skip


def _match(cand: Optional[Candidate], node: onnx.NodeProto, index: GraphIndex) -> Optional[Candidate]:
    if cand is None or cand.trans_a or len(node.input) < 2:
        return None
    before = index.producer.get(node.input[0])
    after = index.consumers.get(node.output[0], [])
    if before is None or before.op_type != "Reshape" or len(after) != 1 or after[0].op_type != "Reshape" \
            or len(index.consumers.get(node.input[0], [])) != 1 or node.output[0] in index.graph_outputs \
            or before.domain not in ("", "ai.onnx") or after[0].domain not in ("", "ai.onnx"):
        return None
    return replace(cand, around=[before, after[0]])


def _unwrap(plan: Union[Plan, Skip], ctx: CheckContext) -> Union[Plan, Skip]:
    if not isinstance(plan, Plan) or type(plan.layer) is not Rows or plan.post_add is not None or plan.fuse_add \
            or len(plan.x_dims) != 2:
        return plan
    cand = plan.cand
    before, after = cand.around
    x_dims = ctx.shapes.get(before.input[0], (0, None))[1]
    y_dims = ctx.shapes.get(after.output[0], (0, None))[1]
    if not x_dims or not y_dims or not 2 <= len(x_dims) <= fc.MAX_RANK or x_dims[-1] != plan.k \
            or list(y_dims) != list(x_dims[:-1]) + [plan.n]:
        return plan   # not provably the same layer on [..., K]: it converts on its own
    index = ctx.consts.index
    plan.cand = replace(cand, x=before.input[0])
    plan.x_dims, plan.output_name = list(x_dims), after.output[0]
    plan.absorbed, plan.bypassed = [after], [before] + _shape_subgraph(after, index)
    if cand.op == "MatMul" and plan.bias is None and plan.bias_input is None:
        add = fusable_add(after, index)
        if add is not None:   # tf2onnx's BiasAdd, after the Reshape
            without = plan.cand
            plan.cand = replace(without, add=add, c=add.input[1] if add.input[0] == after.output[0] else add.input[0])
            fuse_bias(plan, ctx)
            if plan.fuse_add:
                plan.output_name = add.output[0]
            else:
                plan.cand = without
    return plan


def _shape_subgraph(reshape: onnx.NodeProto, index: GraphIndex) -> List[onnx.NodeProto]:
    """The nodes that compute `reshape`'s target shape and nothing else (Shape -> Gather -> Concat, say)."""
    found: List[onnx.NodeProto] = []
    ids, todo = {id(reshape)}, [reshape.input[1]] if len(reshape.input) > 1 else []
    while todo:
        node = index.producer.get(todo.pop())
        if node is None or id(node) in ids or any(
                o in index.graph_outputs or any(id(r) not in ids for r in index.consumers.get(o, []))
                for o in node.output if o):
            continue
        found.append(node)
        ids.add(id(node))
        todo.extend(i for i in node.input if i)
    return found


class WrappedGemmRule(GemmRule):
    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        return _match(super().match(node, consts), node, consts.index)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        return _unwrap(super().check(cand, ctx), ctx)


class WrappedMatMulRule(MatMulRule):
    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        return _match(super().match(node, consts), node, consts.index)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        return _unwrap(super().check(cand, ctx), ctx)
