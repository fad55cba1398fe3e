"""Gemm(A, B[, C]) with a constant B:  Y = alpha * A' @ B' + beta * C  becomes  Conv(W = alpha * B'^T), bias beta * C.

A' = A^T with transA (the layout then reads A transposed), B' = B^T with transB. A C that is not a constant, or
that varies along the rows ([M, 1], [M, N]), stays an Add after the Conv (times beta).
"""
from __future__ import annotations

from typing import Optional, Union

import onnx

from . import fold
from . import fc
from ..graph.constants import Constants
from ..graph.graph_index import attr
from .plan import Candidate, CheckContext, Plan, Skip
from .quantized import quantized_bias


class GemmRule:
    op = "Gemm"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
            return None
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        return Candidate(node, "Gemm", node.input[0], node.input[1] if len(node.input) > 1 else "", c,
                         trans_a=bool(attr(node, "transA", 0)), trans_b=bool(attr(node, "transB", 0)),
                         alpha=float(attr(node, "alpha", 1.0)), beta=float(attr(node, "beta", 1.0)), rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        if len(cand.node.input) < 2:
            return Skip(cand, f"Gemm with {len(cand.node.input)} inputs")
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

