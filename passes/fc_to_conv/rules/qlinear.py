"""QOperator FC layers (onnxruntime's quantize_static with QuantFormat.QOperator) become QLinearConv:

    QLinearMatMul(a, a_scale, a_zp, B, b_scale, b_zp, y_scale, y_zp)             B [K, N] constant
    QGemm(A, a_scale, a_zp, B, b_scale, b_zp[, C][, y_scale, y_zp]) (com.microsoft, transA, transB, alpha)
        ->  QLinearConv(x, a_scale, a_zp, W [N, K, 1, 1], w_scale, w_zp, y_scale, y_zp[, C int32 [N]])

W = B'^T re-laid as for Conv; a per-column scale and zero point of B are per output channel of W; alpha folds
into w_scale (C is scaled by a_scale * b_scale in both). The activation's integers are laid out for the Conv.

Dynamic quantization (quantize_dynamic) writes DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scale):

    MatMulInteger(a, B[, a_zp, b_zp])  ->  ConvInteger(x, W [N, K, 1, 1][, a_zp, w_zp])     (int32 either way)
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import onnx

from . import fold
from . import fc
from ..graph.constants import Constants
from ..graph.graph_index import attr
from .plan import Candidate, CheckContext, Plan, QLinear, Skip, ZeroPoints
from .quantized import QUANT_TYPES

_SCALES = {"QLinearMatMul": (1, 2, 4, 5, 6, 7), "QGemm": (1, 2, 4, 5, 7, 8)}


class QLinearMatMulRule:
    op = "QLinearMatMul"
    domains = ("", "ai.onnx")

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != self.op or node.domain not in self.domains or len(node.input) < 4:
            return None
        return Candidate(node, self.op, node.input[0], node.input[3], rule=self,
                         trans_a=bool(attr(node, "transA", 0)), trans_b=bool(attr(node, "transB", 0)),
                         alpha=float(attr(node, "alpha", 1.0)))

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        found = _quantization(cand, ctx)
        if isinstance(found, str):
            return Skip(cand, found)
        b, qlinear = found
        k, n = (b.shape[1], b.shape[0]) if cand.trans_b else b.shape
        x_dims = _x_dims(cand, ctx)
        if not isinstance(x_dims, str):
            x_dims = fc.activation(cand, ctx, k, x_dims)
        if isinstance(x_dims, str):
            return Skip(cand, x_dims)
        qlinear.w_scale = _per_n(qlinear.w_scale, n, cand.alpha)
        qlinear.w_zero_point = _per_n(qlinear.w_zero_point, n)
        dtype = ctx.shapes.get(cand.node.output[0], (onnx.TensorProto.UINT8, None))[0] or onnx.TensorProto.UINT8
        consts, name, trans_b = ctx.consts, cand.w, cand.trans_b
        plan = Plan(cand, x_dims, k, n, dtype, lambda: fold.conv_weight(consts.value(name), trans_b),
                    (cand.w, trans_b, "qlinear"), op=qlinear)
        return _bias(plan, ctx)


class QGemmRule(QLinearMatMulRule):
    op = "QGemm"
    domains = ("com.microsoft",)


def _quantization(cand: Candidate, ctx: CheckContext):
    node, consts = cand.node, ctx.consts
    if cand.op == "QGemm" and (len(node.input) < 9 or not node.input[7]):
        return "QGemm with a float output (no y_scale): QLinearConv has no float output"
    if cand.op == "QLinearMatMul" and len(node.input) != 8:
        return f"QLinearMatMul with {len(node.input)} inputs"
    b = consts.value(cand.w)
    if b is None:
        return fc.not_constant(cand, ctx)
    if b.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(b.dtype) not in QUANT_TYPES[:2]:
        return f"weight is {b.dtype} {list(b.shape)}: QLinearConv takes a 2-D int8 or uint8 weight here"
    x_s, x_z, w_s, w_z, y_s, y_z = (node.input[i] for i in _SCALES[cand.op])
    w_scale, w_zero = consts.value(w_s), consts.value(w_z) if w_z else np.zeros((), b.dtype)
    if w_scale is None or w_zero is None:
        return "the weight's scale or zero point is not a constant"
    return b, QLinear(x_s, x_z, w_scale, w_zero, y_s, y_z)


def _x_dims(cand: Candidate, ctx: CheckContext):
    x_type = ctx.shapes.get(cand.x)
    if x_type is None or x_type[1] is None:
        return f"rank of activation '{cand.x}' is unknown (shape inference could not derive it)"
    dims = list(x_type[1])
    if cand.op == "QGemm":
        return [dims[1], dims[0]] if cand.trans_a else dims
    if not 1 <= len(dims) <= fc.MAX_RANK:
        return f"activation '{cand.x}' has rank {len(dims)}: ranks 1 to {fc.MAX_RANK} are laid out as images"
    return dims


def _per_n(value: np.ndarray, n: int, alpha: float = 1.0) -> np.ndarray:
    """A per-tensor or per-column (N) quantization parameter as QLinearConv takes it: a scalar, or one per output
    channel; alpha folded into a scale."""
    flat = value.reshape(-1)
    if alpha != 1.0:
        flat = (flat.astype(np.float64) * alpha).astype(value.dtype)
    return flat.reshape(()) if flat.size == 1 else flat


def _bias(plan: Plan, ctx: CheckContext) -> Union[Plan, Skip]:
    node = plan.cand.node
    if plan.cand.op != "QGemm" or len(node.input) < 7 or not node.input[6]:
        return plan
    c = ctx.consts.value(node.input[6])
    if c is None or c.dtype != np.int32 or c.size not in (1, plan.n):
        return Skip(plan.cand, "QGemm's C is not a constant int32 per-channel bias")
    plan.bias, plan.bias_key = np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (plan.n,))), (node.input[6],)
    return plan


class MatMulIntegerRule:
    """Off by default (`convert`=False): onnxruntime's CPU ConvInteger has no fast kernel. On one 128 x 128 x 128
    layer it took 92 us against MatMulInteger's 7.8 us (1 thread), and onnxruntime fuses the original's
    DynamicQuantizeLinear -> MatMulInteger -> Mul into one DynamicQuantizeMatMul: converted BERT and ViT ran 2.6x
    slower. A compiler with a real integer convolution may want it anyway: --convert-dynamic."""
    op = "MatMulInteger"
    KEPT = ("dynamic quantization (MatMulInteger): onnxruntime's ConvInteger is about 12x slower than MatMulInteger "
            "on CPU, so the layer is left as it is")
    SLOW = KEPT + " (--convert-dynamic converts it anyway)"

    def __init__(self, convert: bool = False):
        self.convert = convert

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != self.op or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            return None
        return Candidate(node, self.op, node.input[0], node.input[1], rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        """The plan with --convert-dynamic; without it, the layer stays, and the hint to convert it anyway is given
        only where that flag would convert it (else the reason it would not)."""
        found = self._plan(cand, ctx)
        if self.convert:
            return found
        if isinstance(found, Skip):
            return Skip(cand, f"{self.KEPT}; --convert-dynamic would not convert it either: {found.reason}")
        return Skip(cand, self.SLOW)

    def _plan(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        node, consts = cand.node, ctx.consts
        b = consts.value(cand.w)
        if b is None:
            return Skip(cand, fc.not_constant(cand, ctx))
        if b.ndim != 2 or onnx.helper.np_dtype_to_tensor_dtype(b.dtype) not in QUANT_TYPES[:2]:
            return Skip(cand, f"weight is {b.dtype} {list(b.shape)}: ConvInteger takes a 2-D int8 or uint8 weight")
        w_zp = consts.value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        if len(node.input) > 3 and node.input[3] and w_zp is None:
            return Skip(cand, "the weight's zero point is not a constant")
        k, n = b.shape
        x_dims = _x_dims(cand, ctx)
        if not isinstance(x_dims, str):
            x_dims = fc.activation(cand, ctx, k, x_dims)
        if isinstance(x_dims, str):
            return Skip(cand, x_dims)
        zero_points = ZeroPoints(node.input[2] if len(node.input) > 2 else "",
                                 None if w_zp is None else _per_n(w_zp, n))
        name = cand.w
        return Plan(cand, x_dims, k, n, onnx.TensorProto.INT32, lambda: fold.conv_weight(consts.value(name)),
                    (cand.w, False, "integer"), op=zero_points)
