"""A constant weight per group: MatMul(x [B, G, T, K] or [G, T, K], W [G, K, N]) is G FC layers side by side,
one grouped Conv (group = G):

    x -> Transpose (.., G, K, T) -> Reshape [B, G*K, 1, T] -> Conv(W', group=G) -> Reshape [B, G, N, T]
      -> Transpose (.., G, T, N)
    W'[g*N + n, k, 0, 0] = W[g, k, n]            (fold.grouped_conv_weight)

G must be static and equal to x's group dim (no broadcasting of the weight over a batch of groups). The weight on
the left, MatMul(W [G, N, K], x [B, G, K, T] or [G, K, T]) (hummingbird-ml's GEMM trees), is the same grouped
Conv with the channels already in place:

    x -> Reshape [B, G*K, 1, T] -> Conv(W', group=G) -> Reshape [B, G, N, T]
    W'[g*N + n, k, 0, 0] = W[g, n, k]            (fold.grouped_left_weight)
"""
from __future__ import annotations

from dataclasses import replace
from typing import Union

import onnx

from . import fold
from . import fc
from .layers import Grouped
from .plan import Candidate, CheckContext, Plan, Skip


def plan_grouped(cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
    consts = ctx.consts
    w = consts.peek(cand.w)
    why = fc.dtype_reason(onnx.helper.np_dtype_to_tensor_dtype(w.dtype), ctx.opset)
    if why:
        return Skip(cand, why)
    g, k, n = w.shape
    x_type = ctx.shapes.get(cand.x)
    if x_type is None or x_type[1] is None:
        return Skip(cand, f"rank of activation '{cand.x}' is unknown (shape inference could not derive it)")
    x_dims = list(x_type[1])
    if len(x_dims) not in (3, 4) or x_dims[-3] != g:
        return Skip(cand, f"weight has shape {list(w.shape)} and activation '{cand.x}' {x_dims}: a 3-D weight is a "
                          "grouped layer only on [G, T, K] or [B, G, T, K] with the same static G")
    why = fc.features_reason(cand, x_dims, k)
    if why:
        return Skip(cand, why)
    x_dims[-1] = k
    name = cand.w
    plan = Plan(cand, x_dims, k, n, onnx.helper.np_dtype_to_tensor_dtype(w.dtype),
                lambda: fold.grouped_conv_weight(consts.value(name)), (name, "grouped"), layer=Grouped(group=g))
    return _add_kept(plan)


def _add_kept(plan: Plan) -> Plan:
    if plan.cand.add is not None:
        plan.notes.append(f"Add '{plan.cand.add.name or plan.cand.add.output[0]}' kept after the grouped Conv")
    return plan


def plan_grouped_left(cand: Candidate, ctx: CheckContext, w_name: str, x_name: str) -> Union[Plan, Skip]:
    """MatMul(W [G, N, K], x [.., G, K, T]): the weight on the left, a grouped Conv on x's channels in place."""
    consts = ctx.consts
    w = consts.peek(w_name)
    why = fc.dtype_reason(onnx.helper.np_dtype_to_tensor_dtype(w.dtype), ctx.opset)
    if why:
        return Skip(cand, why)
    g, n, k = w.shape
    x_type = ctx.shapes.get(x_name)
    if x_type is None or x_type[1] is None:
        return Skip(cand, f"rank of activation '{x_name}' is unknown (shape inference could not derive it)")
    x_dims = list(x_type[1])
    if len(x_dims) not in (3, 4) or x_dims[-3] != g:
        return Skip(cand, f"the constant is the left operand with shape {list(w.shape)} and activation '{x_name}' "
                          f"{x_dims}: a 3-D W on the left is a grouped layer only on [G, K, T] or [B, G, K, T] with "
                          "the same static G")
    if isinstance(x_dims[-2], int) and x_dims[-2] != k:
        return Skip(cand, f"activation '{x_name}' has {x_dims[-2]} features but the weight expects {k}")
    x_dims[-2] = k
    cand = replace(cand, x=x_name, w=w_name)
    plan = Plan(cand, x_dims, k, n, onnx.helper.np_dtype_to_tensor_dtype(w.dtype),
                lambda: fold.grouped_left_weight(consts.value(w_name)), (w_name, "grouped-left"),
                layer=Grouped(group=g, channels_first=True))
    return _add_kept(plan)
