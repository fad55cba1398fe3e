"""Quantized weights: W = DequantizeLinear(Q, scale, zero_point) of constants (8, 16 or 4 bits, per tensor or per
channel) stays quantized in the Conv, as DequantizeLinear of the re-laid integer weight (fold.quantized_conv_axis
gives the axis on the Conv weight); a block-quantized one is blocked.py's.
TensorRT's explicit quantization, DequantizeLinear(QuantizeLinear(W float)), keeps the pair around the re-laid
float weight, with the scales it had. An int32 DequantizeLinear bias is the Conv's bias as it is."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np
import onnx

from ..graph.constants import Constants, layout_value
from ..graph.graph_index import attr
from .blocked import find_blocked
from .plan import Quantized

T = onnx.TensorProto
QUANT_TYPES = (T.INT8, T.UINT8, T.INT16, T.UINT16, T.INT4, T.UINT4)   # (QOperator's: the first two)


def find_quantized(name: str, consts: Constants) -> Union[None, str, Tuple[np.ndarray, Quantized]]:
    """None: not a DequantizeLinear output. A str: one that cannot be kept quantized (why). Else the integer
    weight's values and the rest of the quantization."""
    node, through = _through_layout(name, consts)
    if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
        return None
    scale, zp = _scale_and_zero_point(node, consts)
    trt = _float_quantized(node, consts)
    if isinstance(trt, str):
        return trt
    q = consts.value(node.input[0]) if trt is None else trt[0]
    if q is None and consts.index.producer.get(node.input[0]) is not None:
        return None  # dequantizes a run-time tensor: the check says what the layer is
    if q is None or scale is None or (len(node.input) > 2 and node.input[2] and zp is None):
        return "the weight's DequantizeLinear has inputs that are not constants"
    axis = attr(node, "axis", 1)
    if through:
        if attr(node, "block_size", 0):
            return "a block-quantized weight laid out again after its DequantizeLinear: not kept quantized"
        moved = _moved(q, axis, scale, through, consts)
        if isinstance(moved, str):
            return moved
        q, axis = moved
    if attr(node, "block_size", 0):
        if trt is not None:
            return "the weight's QuantizeLinear -> DequantizeLinear is block-quantized: not kept"
        return find_blocked(node, q, scale, zp, attr(node, "axis", 1), attr(node, "block_size", 0))
    if q.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(q.dtype) not in QUANT_TYPES or scale.ndim > 1:
        return f"the weight's DequantizeLinear has a {q.dtype} [{', '.join(map(str, q.shape))}] input: not kept"
    quant = Quantized(node, node.input[0], scale, zp, axis, through=through)
    if trt is not None:
        quant.float_source, quant.q_scale, quant.q_zero_point = trt[1:]
    return q, quant


LAYOUT_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")


def _through_layout(name: str, consts: Constants) -> Tuple[Optional[onnx.NodeProto], List[onnx.NodeProto]]:
    """The node that makes `name` once the layout ops between (Transpose, Reshape, ..., each of constants) are
    passed, and those ops from it down: DequantizeLinear -> Transpose -> MatMul keeps the integer weight, laid out
    as the Transpose lays it."""
    chain: List[onnx.NodeProto] = []
    node = consts.index.producer.get(name)
    while (node is not None and node.op_type in LAYOUT_OPS and node.domain in ("", "ai.onnx") and node.input
           and all(consts.value(i) is not None for i in node.input[1:] if i)):
        chain.append(node)
        node = consts.index.producer.get(node.input[0])
    return node, chain[::-1]


def _moved(q: np.ndarray, axis: int, scale: np.ndarray, through: List[onnx.NodeProto], consts: Constants):
    """The integer weight laid out by `through`, and where its quantization axis went: DequantizeLinear is
    element-wise along its axis, so DQ(q) laid out is DQ(q laid out) with the axis moved as the Transpose moves
    dims; a Reshape keeps a per-tensor scale only."""
    for node in through:
        rank = q.ndim
        q = layout_value(node, q, consts)
        if node.op_type == "Transpose":
            perm = list(attr(node, "perm", None) or range(rank)[::-1])
            axis = perm.index(axis % rank)
        elif node.op_type != "Identity" and scale.size > 1:
            return (f"a per-channel weight reshaped by {node.op_type} after its DequantizeLinear: its channels do not "
                    "follow, not kept quantized")
    return q, axis


def _scale_and_zero_point(node: onnx.NodeProto, consts: Constants):
    scale = consts.value(node.input[1]) if len(node.input) > 1 else None
    zp = consts.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return scale, zp


def _float_quantized(dq: onnx.NodeProto, consts: Constants):
    """TensorRT's explicit quantization: DequantizeLinear(QuantizeLinear(W float constant, s, z), s', z'). Returns
    None when the DequantizeLinear does not read a QuantizeLinear, a reason when the pair cannot be kept, else the
    weight's shape as integers (values unread), W's name, and the QuantizeLinear's scale and zero point."""
    q_node = consts.index.producer.get(dq.input[0])
    if q_node is None or q_node.op_type != "QuantizeLinear" or q_node.domain not in ("", "ai.onnx"):
        return None
    w = consts.peek(q_node.input[0])
    if w is None:
        return None  # an activation's Q -> DQ pair (attention's K and V, say): not a weight
    scale, zp = _scale_and_zero_point(q_node, consts)
    if scale is None or (len(q_node.input) > 2 and q_node.input[2] and zp is None):
        return "the weight's QuantizeLinear -> DequantizeLinear has inputs that are not constants"
    if attr(q_node, "block_size", 0) or attr(q_node, "axis", 1) != attr(dq, "axis", 1) and scale.size > 1:
        return "the weight's QuantizeLinear and DequantizeLinear quantize along different axes: not kept"
    dtype = zp.dtype if zp is not None else np.dtype(np.uint8)
    return np.broadcast_to(np.zeros((), dtype), w.shape), q_node.input[0], scale, zp


def quantized_bias(name: str, consts: Constants, n: int) -> bool:
    """Whether `name` is DequantizeLinear(b, scale[, 0]) of an int32 constant [N] with a scale of one value or N,
    as QDQ quantizers write a bias (scale = x_scale * w_scale): the Conv reads it as its B input, as it is, and a
    QDQ compiler sees the bias of a quantized Conv."""
    node = consts.index.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
        return False
    b = consts.value(node.input[0])
    scale = consts.value(node.input[1]) if len(node.input) > 1 else None
    zp = consts.value(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.int32)
    return (b is not None and b.dtype == np.int32 and b.shape == (n,) and scale is not None
            and scale.size in (1, n) and scale.ndim <= 1 and zp is not None and not zp.any()
            and attr(node, "axis", 0) in (0, -1) and not attr(node, "block_size", 0))

