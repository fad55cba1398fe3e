"""MatMul(X, B) with a constant 2-D B and X of rank 1 to 4:  Y = X @ B  becomes  Conv(W = B^T); and
Add(MatMul(X, B), c), the MatMul read by that Add alone: one Conv with bias c when c broadcasts to [N] without
changing the output's shape (otherwise the MatMul converts and the Add stays, with a note)."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import onnx

from .. import fold
from ..graph_index import GraphIndex
from . import fc
from .layers import ChannelsFirst, Grouped
from .plan import Candidate, CheckContext, Plan, Skip
from .quantized import quantized_bias
from .grouped import plan_grouped
from .weight_first import column_bias, per_channel_column, plan_weight_first


class MatMulRule:
    op = "MatMul"

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> Optional[Candidate]:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            return None
        return Candidate(node, "MatMul", node.input[0], node.input[1] if len(node.input) > 1 else "", rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        if len(cand.node.input) != 2:
            return Skip(cand, f"MatMul with {len(cand.node.input)} inputs")
        left = plan_weight_first(cand, ctx)
        if left is not None:
            return left
        w = ctx.consts.peek(cand.w)
        if w is not None and w.ndim == 3:
            return plan_grouped(cand, ctx)
        found = fc.weight(cand, ctx)
        if isinstance(found, str):
            return Skip(cand, found)
        w, quant = found
        why = fc.dtype_reason(onnx.helper.np_dtype_to_tensor_dtype(w.dtype), ctx.opset)
        if why:
            return Skip(cand, why)
        k, n = w.shape
        x_dims = fc.activation(cand, ctx, k)
        if isinstance(x_dims, str):
            return Skip(cand, x_dims)
        return fc.plan(cand, ctx, w, quant, x_dims, k, n)


class MatMulAddRule(MatMulRule):
    """The MatMul whose output only an Add reads, with the Add's other operand as the bias candidate."""

    def match(self, node: onnx.NodeProto, index: GraphIndex) -> Optional[Candidate]:
        cand = super().match(node, index)
        add = _fusable_add(node, index) if cand is not None else None
        if add is None:
            return None
        return replace(cand, add=add, c=add.input[1] if add.input[0] == node.output[0] else add.input[0])

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        plan = super().check(cand, ctx)
        if isinstance(plan, Plan) and not isinstance(plan.layer, Grouped):
            _fuse_bias(plan, ctx)
        return plan


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


def _fuse_bias(plan: Plan, ctx: CheckContext) -> None:
    cand, n = plan.cand, plan.n
    if quantized_bias(cand.c, ctx.consts, n):
        plan.bias_input, plan.fuse_add = cand.c, True
        return
    c = ctx.consts.value(cand.c)
    add = cand.add.name or cand.add.output[0]
    out_rank = len(plan.x_dims) if len(plan.x_dims) > 1 else 1
    if c is None:
        plan.notes.append(f"Add '{add}' kept: its operand is not a constant")
    elif c.dtype != plan.np_dtype:
        plan.notes.append(f"Add '{add}' kept: its operand is {c.dtype}, the weight {plan.np_dtype}")
    elif isinstance(plan.layer, ChannelsFirst):
        if per_channel_column(c, n, out_rank):
            plan.bias, plan.bias_key, plan.fuse_add = column_bias(c, n), (cand.c, 1.0, "col"), True
        else:
            plan.notes.append(f"Add '{add}' kept: its operand of shape {list(c.shape)} is not one value per output "
                              f"channel of the [..., {n}, M] output")
    elif not fold.per_channel_bias(c, n, out_rank):
        plan.notes.append(f"Add '{add}' kept: its operand of shape {list(c.shape)} is not a per-channel bias of "
                          f"the [..., {n}] output")
    else:
        plan.bias, plan.bias_key, plan.fuse_add = fold.conv_bias(c, n), (cand.c, 1.0), True
