"""Quantized weights: W = DequantizeLinear(Q, scale, zero_point) of constants stays quantized in the Conv, as
DequantizeLinear of the re-laid integer weight (fold.quantized_conv_axis gives the axis on the Conv weight).
TensorRT's explicit quantization, DequantizeLinear(QuantizeLinear(W float)), keeps the pair around the re-laid
float weight, with the scales it had. An int32 DequantizeLinear bias is the Conv's bias as it is."""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import onnx

from . import fold
from ..graph.constants import Constants
from ..graph.graph_index import attr
from .plan import Quantized

T = onnx.TensorProto
QUANT_TYPES = (T.INT8, T.UINT8, T.INT16, T.UINT16)


def find_quantized(name: str, consts: Constants) -> Union[None, str, Tuple[np.ndarray, Quantized]]:
    """None: not a DequantizeLinear output. A str: one that cannot be kept quantized (why). Else the integer
    weight's values and the rest of the quantization."""
    node = consts.index.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
        return None
    if attr(node, "block_size", 0):
        return "the weight is block-quantized (DequantizeLinear block_size): not kept quantized yet"
    scale, zp = _scale_and_zero_point(node, consts)
    trt = _float_quantized(node, consts)
    if isinstance(trt, str):
        return trt
    q = consts.value(node.input[0]) if trt is None else trt[0]
    if q is None and consts.index.producer.get(node.input[0]) is not None:
        return None  # dequantizes a run-time tensor: the check says what the layer is
    if q is None or scale is None or (len(node.input) > 2 and node.input[2] and zp is None):
        return "the weight's DequantizeLinear has inputs that are not constants"
    if q.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(q.dtype) not in QUANT_TYPES or scale.ndim > 1:
        return f"the weight's DequantizeLinear has a {q.dtype} [{', '.join(map(str, q.shape))}] input: not kept"
    quant = Quantized(node, node.input[0], scale, zp, attr(node, "axis", 1))
    if trt is not None:
        quant.float_source, quant.q_scale, quant.q_zero_point = trt[1:]
    return q, quant


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


def scale_is_per_k(quant: Quantized, trans_b: bool) -> bool:
    """A per-channel scale along the FC's input features K: it cannot follow K into a head's C x H x W."""
    return quant.scale.size > 1 and fold.quantized_conv_axis(quant.axis, trans_b) == 1


def to_conv(quant: Quantized, trans_b: bool, alpha: float) -> Quantized:
    """The quantization of the Conv weight: the axis remapped, alpha folded into the scale."""
    scale = quant.scale if alpha == 1.0 else (quant.scale.astype(np.float64) * alpha).astype(quant.scale.dtype)
    return Quantized(quant.node, quant.q, scale, quant.zero_point, fold.quantized_conv_axis(quant.axis, trans_b),
                     quant.float_source, quant.q_scale, quant.q_zero_point)
