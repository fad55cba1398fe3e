"""Quantized weights: W = DequantizeLinear(Q, scale, zero_point) of constants stays quantized in the Conv, as
DequantizeLinear of the re-laid integer weight (fold.quantized_conv_axis gives the axis on the Conv weight)."""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import onnx

from .. import fold
from ..constants import Constants
from ..graph_index import attr
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
    q = consts.value(node.input[0])
    scale = consts.value(node.input[1]) if len(node.input) > 1 else None
    zp = consts.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if q is None or scale is None or (len(node.input) > 2 and node.input[2] and zp is None):
        return "the weight's DequantizeLinear has inputs that are not constants"
    if q.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(q.dtype) not in QUANT_TYPES or scale.ndim > 1:
        return f"the weight's DequantizeLinear has a {q.dtype} [{', '.join(map(str, q.shape))}] input: not kept"
    return q, Quantized(node, node.input[0], scale, zp, attr(node, "axis", 1))


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
    return Quantized(quant.node, quant.q, scale, quant.zero_point, fold.quantized_conv_axis(quant.axis, trans_b))
