"""MatMul(X, B) with a constant 2-D B and X of rank 1 to 4:  Y = X @ B  becomes  Conv(W = B^T); and
Add(MatMul(X, B), c), the MatMul read by that Add alone: one Conv with bias c when c broadcasts to [N] without
changing the output's shape (otherwise the MatMul converts and the Add stays, with a note)."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import onnx

from . import fc
from ..graph.constants import Constants
from .add_bias import fusable_add, fuse_bias
from .grouped import plan_grouped
from .layers import Grouped
from .plan import Candidate, CheckContext, Plan, Skip


class MatMulRule:
    op = "MatMul"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            return None
        return Candidate(node, "MatMul", node.input[0], node.input[1] if len(node.input) > 1 else "", rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        if len(cand.node.input) != 2:
            return Skip(cand, f"MatMul with {len(cand.node.input)} inputs")
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

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        cand = super().match(node, consts)
        add = fusable_add(node, consts.index) if cand is not None else None
        if add is None:
            return None
        return replace(cand, add=add, c=add.input[1] if add.input[0] == node.output[0] else add.input[0])

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        plan = super().check(cand, ctx)
        if isinstance(plan, Plan) and not isinstance(plan.layer, Grouped):
            fuse_bias(plan, ctx)
        return plan
