"""Gemm(A, B[, C]) with a constant B:  Y = alpha * A' @ B' + beta * C  becomes  Conv(W = alpha * B'^T), bias beta * C.

A' = A^T with transA (the layout then reads A transposed), B' = B^T with transB. A C that is not a constant, or
that varies along the rows ([M, 1], [M, N]), stays an Add after the Conv (times beta).
"""
from __future__ import annotations

from typing import List, Optional, Union

import onnx

from .. import fold
from ..graph_index import GraphIndex, attr
from . import fc
from .plan import Candidate, CheckContext, Plan, Skip
from .quantized import quantized_bias
from .weight_first import plan_weight_first


class GemmRule:
    op = "Gemm"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> Optional[Candidate]:
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
            return None
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        return Candidate(node, "Gemm", node.input[0], node.input[1] if len(node.input) > 1 else "", c,
                         trans_a=bool(attr(node, "transA", 0)), trans_b=bool(attr(node, "transB", 0)),
                         alpha=float(attr(node, "alpha", 1.0)), beta=float(attr(node, "beta", 1.0)), rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        if len(cand.node.input) < 2:
            return Skip(cand, f"Gemm with {len(cand.node.input)} inputs")
        left = plan_weight_first(cand, ctx)
        if left is not None:
            return left
        found = fc.weight(cand, ctx)
        if isinstance(found, str):
            return Skip(cand, found)
        w, quant = found
        dtype = onnx.helper.np_dtype_to_tensor_dtype(w.dtype)
        why = fc.dtype_reason(dtype, ctx.opset)
        if why:
            return Skip(cand, why)
        k, n = (w.shape[1], w.shape[0]) if cand.trans_b else w.shape
        a_dims = ctx.shapes.get(cand.x, (dtype, None))[1]
        x_dims = list(a_dims) if a_dims is not None and len(a_dims) == 2 else [None, None]
        if cand.trans_a:  # A is [K, M]: record it as [M, K] and let the layout read it transposed
            x_dims = [x_dims[1], x_dims[0]]
        why = fc.features_reason(cand, x_dims, k)
        if why:
            return Skip(cand, why)
        x_dims[-1] = k
        plan = fc.plan(cand, ctx, w, quant, x_dims, k, n, cand.alpha)
        if cand.c is not None:
            _bias(plan, ctx, w.dtype)
        return plan


def _bias(plan: Plan, ctx: CheckContext, dtype) -> None:
    cand, n = plan.cand, plan.n
    if cand.beta == 1.0 and quantized_bias(cand.c, ctx.consts, n):
        plan.bias_input = cand.c
        return
    c = ctx.consts.value(cand.c)
    if c is None:
        plan.post_add, plan.post_scale = cand.c, cand.beta
        plan.notes.append(f"bias '{cand.c}' is not a constant: kept as an Add after the Conv")
    elif fold.per_channel_bias(c, n, 2):
        plan.bias, plan.bias_key = fold.conv_bias(c, n, cand.beta, dtype), (cand.c, cand.beta)
    else:
        plan.post_add = fold.post_add_term(c, cand.beta).astype(dtype)
        plan.notes.append(f"bias '{cand.c}' of shape {list(c.shape)} varies along the rows: kept as an Add after "
                          "the Conv")


class WrappedGemmRule(GemmRule):
    """Reshape(x [..., K] -> [-1, K]) -> Gemm -> Reshape(-> [..., N]), as older exporters wrap every Linear: the
    FC layer on x that it is, so that its Conv reads x's image and chains of them stay 4-D as MatMul chains do.
    Taken only when shape inference shows the Reshape after restores x's leading dims (same names or sizes), the
    Gemm reads A untransposed, and its C, if any, is one value per output channel; else the Gemm converts alone."""

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> Optional[Candidate]:
        cand = super().match(node, index)
        if cand is None or cand.trans_a or len(node.input) < 2:
            return None
        before = index.producer.get(node.input[0])
        after = index.consumers.get(node.output[0], [])
        if before is None or before.op_type != "Reshape" or len(after) != 1 or after[0].op_type != "Reshape" \
                or len(index.consumers.get(node.input[0], [])) != 1 or node.output[0] in index.graph_outputs \
                or before.domain not in ("", "ai.onnx") or after[0].domain not in ("", "ai.onnx"):
            return None
        cand.around = [before, after[0]]
        return cand

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        plan = super().check(cand, ctx)
        if not isinstance(plan, Plan) or plan.head is not None or plan.post_add is not None or plan.channels_first:
            return plan
        before, after = cand.around
        x_dims = ctx.shapes.get(before.input[0], (0, None))[1]
        y_dims = ctx.shapes.get(after.output[0], (0, None))[1]
        if not x_dims or not y_dims or not 2 <= len(x_dims) <= fc.MAX_RANK or x_dims[-1] != plan.k \
                or list(y_dims) != list(x_dims[:-1]) + [plan.n]:
            return plan   # not provably the same layer on [..., K]: the Gemm converts on its own
        cand.x = before.input[0]
        plan.x_dims, plan.output_name = list(x_dims), after.output[0]
        plan.absorbed, plan.bypassed = [after], [before] + _shape_subgraph(after, ctx.consts.index)
        return plan


def _shape_subgraph(reshape: onnx.NodeProto, index: GraphIndex) -> List[onnx.NodeProto]:
    """The nodes that compute `reshape`'s target shape and nothing else (Shape -> Slice -> Concat, say): they go
    with it."""
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
