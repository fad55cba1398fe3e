"""A constant weight per group: MatMul(x [B, G, T, K] or [G, T, K], W [G, K, N]) is G FC layers side by side,
one grouped Conv (group = G):

    x -> Transpose (.., G, K, T) -> Reshape [B, G*K, 1, T] -> Conv(W', group=G) -> Reshape [B, G, N, T]
      -> Transpose (.., G, T, N)
    W'[g*N + n, k, 0, 0] = W[g, k, n]            (fold.grouped_conv_weight)

G must be static and equal to x's group dim (no broadcasting of the weight over a batch of groups).
"""
from __future__ import annotations

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
    if cand.add is not None:
        plan.notes.append(f"Add '{cand.add.name or cand.add.output[0]}' kept after the grouped Conv")
    return plan
