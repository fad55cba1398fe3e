"""The weight on the left: Y = W @ x, the form of Conv1d-style blocks (audio, speech) whose activations are already
channels first:

    MatMul(W [N, K], x [K, M])        ->  Reshape [1, K, 1, M], Conv(W[:, :, None, None]), Reshape [N, M]
    MatMul(W [N, K], x [B, K, T])     ->  Reshape [B, K, 1, T], Conv, Reshape [B, N, T]
    Gemm(A, B) with A constant        ->  the same with W = alpha * A' and x = B' (transB: B is read transposed);
                                          beta * C for a C of shape [N, 1] (per output channel) is the Conv bias
    MatMul(W [N, K], x [K])           ->  the usual FC layer x @ W^T
    MatMul(W [G, N, K], x [B, G, K, T])  ->  a grouped Conv, channels in place (grouped.py)

No Transpose: the channels are where the Conv wants them. A bias of shape [N, 1] (or [1, N, 1]) added after the
MatMul is the Conv bias.

The rule matches a MatMul or Gemm whose left operand is a constant and whose right one is not; it stands before the
Gemm and MatMul rules, which take the weight on the right.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import onnx

from . import fold
from . import fc
from ..graph.constants import Constants
from .add_bias import column_bias, fuse_bias, per_channel_column
from .gemm import GemmRule
from .grouped import plan_grouped_left
from .layers import CHANNELS_FIRST
from .matmul import MatMulAddRule, MatMulRule
from .plan import Candidate, CheckContext, Plan, Skip


class WeightFirstRule:
    op = "W @ x"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        """MatMul(W, x) (with the Add after it that a MatMul+Add layer has) or Gemm(W, x[, C]): the left operand a
        constant, the right one not."""
        if node.op_type not in ("Gemm", "MatMul") or node.domain not in ("", "ai.onnx") or len(node.input) < 2 \
                or node.op_type == "MatMul" and len(node.input) != 2:
            return None
        if consts.peek(node.input[0]) is None or consts.peek(node.input[1]) is not None:
            return None
        cand = GemmRule().match(node, consts) or MatMulAddRule().match(node, consts) or MatMulRule().match(node, consts)
        return replace(cand, rule=self) if cand is not None else None

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        plan = _plan(cand, ctx)
        if isinstance(plan, Plan) and cand.add is not None:
            fuse_bias(plan, ctx)
        return plan


def _plan(cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
    consts = ctx.consts
    w_name, x_name = (cand.x, cand.w)
    w = consts.peek(w_name)
    if w.ndim == 3 and cand.op == "MatMul":
        return plan_grouped_left(cand, ctx, w_name, x_name)
    if w.ndim != 2:
        return Skip(cand, f"the constant is the left operand (W @ x) with shape {list(w.shape)}: only a 2-D W (or a "
                          "3-D W of a grouped layer) is a fully connected layer")
    why = fc.dtype_reason(onnx.helper.np_dtype_to_tensor_dtype(w.dtype), ctx.opset)
    if why:
        return Skip(cand, why)
    gemm = cand.op == "Gemm"
    w_transposed, x_transposed = (cand.trans_a, cand.trans_b) if gemm else (False, False)
    n, k = (w.shape[1], w.shape[0]) if w_transposed else w.shape
    x_type = ctx.shapes.get(x_name)
    if x_type is None or x_type[1] is None:
        return Skip(cand, f"rank of activation '{x_name}' is unknown (shape inference could not derive it)")
    x_dims = list(x_type[1])
    if x_transposed:
        x_dims = x_dims[::-1]
    if not 1 <= len(x_dims) <= 3 or gemm and len(x_dims) != 2:
        return Skip(cand, f"W @ x with x of rank {len(x_dims)}: ranks 1 to 3 are laid out as images")
    feature = x_dims[-2] if len(x_dims) > 1 else x_dims[0]
    if isinstance(feature, int) and feature != k:
        return Skip(cand, f"activation '{x_name}' has {feature} features but the weight expects {k}")
    cand = replace(cand, x=x_name, w=w_name, trans_a=x_transposed, trans_b=not w_transposed)
    alpha = cand.alpha if gemm else 1.0
    if len(x_dims) == 1:                         # a matrix-vector product: the usual FC layer
        return fc.plan(cand, ctx, w, None, [k], k, n, alpha)
    trans_b = cand.trans_b
    plan = Plan(cand, x_dims, k, n, onnx.helper.np_dtype_to_tensor_dtype(w.dtype),
                lambda: fold.conv_weight(consts.value(w_name), trans_b, alpha), (w_name, trans_b, alpha, "left"),
                layer=CHANNELS_FIRST)
    if gemm and cand.c is not None:
        _gemm_bias(plan, ctx)
    return plan


def _gemm_bias(plan: Plan, ctx: CheckContext) -> None:
    cand = plan.cand
    c = ctx.consts.value(cand.c)
    if c is not None and per_channel_column(c, plan.n, 2):
        plan.bias, plan.bias_key = column_bias(c, plan.n, cand.beta).astype(plan.np_dtype), (cand.c, cand.beta, "col")
    elif c is not None:
        plan.post_add = fold.post_add_term(c, cand.beta).astype(plan.np_dtype)
        plan.notes.append(f"bias '{cand.c}' of shape {list(c.shape)} is not one value per output channel: kept as an "
                          "Add after the Conv")
    else:
        plan.post_add, plan.post_scale = cand.c, cand.beta
        plan.notes.append(f"bias '{cand.c}' is not a constant: kept as an Add after the Conv")
