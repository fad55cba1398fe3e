"""What a rule works with: the Candidate it matched, and the Plan (or Skip) its check returns.

A Plan is everything rewrite/writer.py needs to emit the layer: the kind of layer (layers.py, which emits it), the Conv-like
op, how to fold its weight, its bias, the activation's dims, and where the result must appear. Nothing here edits
the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import onnx

from ..graph.constants import Constants, layout_value
from ..graph.shapes import Dim, TypeShape
from . import fold
from .layers import ROWS, Rows


@dataclass(frozen=True)
class Candidate:
    """What a rule's match found; checks and rewrites make changed copies (dataclasses.replace), never edit it."""
    node: onnx.NodeProto
    op: str                      # the FC op as reported ("Gemm", "MatMul")
    x: str                       # the activation (Gemm's A)
    w: str                       # the weight (Gemm's B)
    c: Optional[str] = None      # Gemm's C, or the Add's other operand
    add: Optional[onnx.NodeProto] = None
    trans_a: bool = False
    trans_b: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    rule: Any = None             # the Rule that matched it, and checks it
    around: List[onnx.NodeProto] = field(default_factory=list)   # the Reshapes around a wrapped Gemm: before, after
    key: str = ""                # where the node sits ("<scope>#<position>"): stable across runs of the pass

    @property
    def name(self) -> str:
        return self.node.name or self.node.output[0]


@dataclass
class Quantized:
    """A weight that reaches the layer through DequantizeLinear(q, scale, zero_point) of constants, per tensor or
    per channel: the Conv keeps it quantized, as DequantizeLinear of the re-laid integer weight (emit). A form with
    more to it (blocked.py's block_size) is a subclass that says how its scales follow the weight (to_conv) and
    which attributes its DequantizeLinear takes."""
    node: Optional[onnx.NodeProto]   # the DequantizeLinear (None: the FC op dequantizes itself, as MatMulNBits)
    q: str
    scale: np.ndarray
    zero_point: Optional[np.ndarray]
    axis: int                    # on the Conv weight
    float_source: Optional[str] = None   # TensorRT style: q = QuantizeLinear(this float constant, ...)
    q_scale: Optional[np.ndarray] = None  # ... with this scale and zero point
    q_zero_point: Optional[np.ndarray] = None
    through: List[onnx.NodeProto] = field(default_factory=list)   # layout ops between the DQ and the layer

    def source_values(self, consts: Constants) -> np.ndarray:
        """The weight's integers (TensorRT style: its float values) as the layer reads them, laid out by `through`."""
        values = consts.value(self.float_source or self.q)
        for node in self.through:
            values = layout_value(node, values, consts)
        return values

    def attrs(self) -> Dict[str, int]:
        return {"axis": self.axis}

    def varies_along_k(self, trans_b: bool) -> bool:
        """A scale that changes along the FC's input features K: it cannot follow K into a head's C x H x W."""
        return self.scale.size > 1 and fold.quantized_conv_axis(self.axis, trans_b) == 1

    def to_conv(self, trans_b: bool, alpha: float) -> "Quantized":
        """The quantization of the Conv weight: the axis remapped, alpha folded into the scale."""
        scale = self.scale if alpha == 1.0 else (self.scale.astype(np.float64) * alpha).astype(self.scale.dtype)
        return replace(self, scale=scale, axis=fold.quantized_conv_axis(self.axis, trans_b))

    def emit(self, em, folded: Callable[[], np.ndarray], hint: str) -> str:
        """DequantizeLinear(the re-laid integer weight `folded()`, scale, zero point) -> the Conv weight; TensorRT
        style, the integer weight is QuantizeLinear of the re-laid float weight."""
        if self.float_source is None:
            q = em.constant(self.q + "_conv", folded())
        else:
            inputs = [em.constant(self.float_source + "_conv", folded()), em.constant(self.q + "_q_scale", self.q_scale)]
            if self.q_zero_point is not None:
                inputs.append(em.constant(self.q + "_q_zero_point", self.q_zero_point))
            q = em.node("QuantizeLinear", inputs, self.q + "_conv", **self.attrs())
        inputs = [q, em.constant(self.q + "_scale", self.scale)]
        if self.zero_point is not None:
            inputs.append(em.constant(self.q + "_zero_point", self.zero_point))
        return em.node("DequantizeLinear", inputs, hint + "_conv", **self.attrs())


class Conv:
    """The Conv-like op a Plan emits, and the inputs it takes: Conv(x, w[, B])."""
    name = "Conv"

    def inputs(self, x_image: str, weight: str, hint: str, em) -> List[str]:
        return [x_image, weight]


@dataclass
class QLinear(Conv):
    """QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, B]) for a QOperator layer (QLinearMatMul,
    QGemm): the names of the activation's and the output's scale and zero point, and the weight's, re-laid."""
    x_scale: str = ""
    x_zero_point: str = ""
    w_scale: np.ndarray = None
    w_zero_point: np.ndarray = None
    y_scale: str = ""
    y_zero_point: str = ""
    name = "QLinearConv"

    def inputs(self, x_image: str, weight: str, hint: str, em) -> List[str]:
        return [x_image, self.x_scale, self.x_zero_point, weight, em.constant(hint + "_conv_scale", self.w_scale),
                em.constant(hint + "_conv_zero_point", self.w_zero_point), self.y_scale, self.y_zero_point]


@dataclass
class ZeroPoints(Conv):
    """ConvInteger(x, w[, x_zp, w_zp]) for a MatMulInteger layer: the activation's zero point (a tensor name, often
    DynamicQuantizeLinear's; "" for none) and the weight's, per output channel or one."""
    x_zero_point: str = ""
    w_zero_point: Optional[np.ndarray] = None
    name = "ConvInteger"

    def inputs(self, x_image: str, weight: str, hint: str, em) -> List[str]:
        if self.w_zero_point is not None:
            return [x_image, weight, self.x_zero_point, em.constant(hint + "_conv_zero_point", self.w_zero_point)]
        return [x_image, weight] + ([self.x_zero_point] if self.x_zero_point else [])


CONV = Conv()


@dataclass
class Plan:
    cand: Candidate
    x_dims: List[Dim]            # dims of the activation as it enters the layer
    k: int
    n: int
    dtype: int
    fold_weight: Callable[[], np.ndarray]   # -> the Conv weight [N, K, 1, 1] (or [N, C, H, W] for a head)
    weight_key: tuple            # equal keys share one folded initializer
    op: Conv = CONV              # the Conv-like op to emit, and its inputs (Conv, QLinear, ZeroPoints)
    layer: Rows = ROWS           # the kind of layer (layers.py): how its input enters and its Conv is emitted
    bias: Optional[np.ndarray] = None
    bias_key: Optional[tuple] = None
    bias_input: Optional[str] = None    # a tensor already in the graph that is the Conv bias (a quantized one)
    fuse_add: bool = False       # the matched Add is folded into the Conv bias
    post_add: Union[None, str, np.ndarray] = None   # a row-varying Gemm C, added after the Conv
    post_scale: float = 1.0      # beta for a non-constant C
    quant: Optional[Quantized] = None
    notes: List[str] = field(default_factory=list)
    absorbed: List[onnx.NodeProto] = field(default_factory=list)   # replaced too (a wrapped Gemm's Reshape after)
    bypassed: List[onnx.NodeProto] = field(default_factory=list)   # no longer read (its Reshape before): removed
    output_name: Optional[str] = None    # the tensor the rewrite produces, when not the node's (or fused Add's)

    @property
    def np_dtype(self) -> np.dtype:
        return onnx.helper.tensor_dtype_to_np_dtype(self.dtype)

    @property
    def weight_shape(self) -> List[int]:
        return self.layer.weight_shape(self)

    @property
    def output(self) -> str:
        """The tensor the rewritten nodes must produce under its original name."""
        if self.output_name:
            return self.output_name
        return self.cand.add.output[0] if self.fuse_add else self.cand.node.output[0]


@dataclass
class Skip:
    cand: Candidate
    reason: str


@dataclass
class CheckContext:
    """What a rule's check may read: the graph's constants and shapes, the opset, and the pass's mode."""
    consts: Constants
    shapes: Dict[str, TypeShape]
    opset: int
    mode: str = "full"
