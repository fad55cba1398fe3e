"""The bias a layer takes from an Add after it (MatMul+Add, and the same after W @ x or a wrapped layer): which Add
may be fused (the layer's only reader), and whether its operand is one value per output channel (the Conv bias) or
stays an Add after the Conv, with a note."""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from . import fold
from ..graph.graph_index import GraphIndex
from .layers import ChannelsFirst
from .plan import CheckContext, Plan
from .quantized import quantized_bias


def per_channel_column(c: np.ndarray, n: int, out_rank: int) -> bool:
    """True when adding `c` to a channels-first output [..., N, M] adds c[n] to row n only: c is [N, 1] or
    [1, N, 1] (or a single value), with no more dims than the output."""
    if c.size == 1:
        return c.ndim <= out_rank
    return 2 <= c.ndim <= out_rank and c.shape[-1] == 1 and c.shape[-2] == n and all(d == 1 for d in c.shape[:-2])


def column_bias(c: np.ndarray, n: int, beta: float = 1.0) -> np.ndarray:
    return fold.conv_bias(c.reshape(-1), n, beta)



def fusable_add(node: onnx.NodeProto, index: GraphIndex) -> Optional[onnx.NodeProto]:
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


def fuse_bias(plan: Plan, ctx: CheckContext) -> None:
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
