"""Block-quantized weights (opset 21): W = DequantizeLinear(Q, S, Z, axis=a, block_size=B) of constants, the form
onnxruntime's MatMulNBitsQuantizer writes in QDQ (int4 or uint4, blocks of 32 along K) and MatMulNBits becomes
(nbits.py). Along a = 0 on a [K, N] weight:

    W[k, n] = (Q[k, n] - Z[k // B, n]) * S[k // B, n]          S, Z [ceil(K / B), N]

Transposing the weight transposes the block grid with it, and unit dims added to both change nothing, so the Conv
weight is the same dequantization of re-laid tensors, each laid out as the weight is (fold.conv_weight):

    Wc = DequantizeLinear(Q'^T[:, :, None, None], S'^T[:, :, None, None], Z'^T[:, :, None, None],
                          axis = fold.quantized_conv_axis(a), block_size = B)          Wc [N, K, 1, 1]

alpha * W = DequantizeLinear(Q, alpha * S, Z). The blocks cut K into pieces that do not follow K into a classifier
head's C x H x W, so a blocked weight is always a 1x1 Conv.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple, Union

import numpy as np
import onnx

from . import fold
from .plan import Quantized

T = onnx.TensorProto
BLOCK_TYPES = (T.INT8, T.UINT8, T.INT16, T.UINT16, T.INT4, T.UINT4)


@dataclass
class Blocked(Quantized):
    block_size: int = 0

    def attrs(self) -> Dict[str, int]:
        return {"axis": self.axis, "block_size": self.block_size}

    def varies_along_k(self, trans_b: bool) -> bool:
        return True

    def to_conv(self, trans_b: bool, alpha: float) -> "Blocked":
        scale = fold.conv_weight(self.scale, trans_b, alpha)
        zero_point = None if self.zero_point is None else fold.conv_weight(self.zero_point, trans_b)
        return replace(self, scale=scale, zero_point=zero_point, axis=fold.quantized_conv_axis(self.axis, trans_b))


def find_blocked(node: onnx.NodeProto, q: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray],
                 axis: int, block_size: int) -> Union[str, Tuple[np.ndarray, Blocked]]:
    """The weight's quantization, or why it is not kept: a 2-D integer weight whose scale (and zero point) hold one
    value per block along `axis` and per row across it."""
    shape = ", ".join(map(str, q.shape))
    if q.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(q.dtype) not in BLOCK_TYPES:
        return f"the weight's block-quantized DequantizeLinear has a {q.dtype} [{shape}] input: not kept"
    axis %= 2
    grid = tuple(-(-d // block_size) if i == axis else d for i, d in enumerate(q.shape))
    if scale.shape != grid or zero_point is not None and zero_point.shape != grid:
        return (f"the weight's block-quantized DequantizeLinear has a scale of shape {list(scale.shape)} for a "
                f"[{shape}] weight in blocks of {block_size}: not the block grid {list(grid)}")
    return q, Blocked(node, node.input[0], scale, zero_point, axis, block_size=block_size)
