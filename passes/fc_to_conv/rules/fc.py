"""What every FC rule checks the same way: the weight (a constant, or a quantized constant), its dtype, the
activation's features, and the Conv weight the layer folds into (1x1, or full-kernel for a classifier head).

    Conv weight = (alpha * B'^T)[:, :, None, None]   [N, K, 1, 1]      (fold.conv_weight)
                = the same, reshaped to [N, C, H, W]  for a head       (fold.full_kernel_weight)
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np
import onnx

from . import fold
from .head import find_head
from .layers import ROWS
from .plan import Candidate, CheckContext, Plan, Quantized
from .quantized import find_quantized

T = onnx.TensorProto
MAX_RANK = 4


def dtype_reason(dtype: int, opset: int) -> Optional[str]:
    if dtype in (T.FLOAT, T.FLOAT16):
        return None
    if dtype == T.BFLOAT16:
        return None if opset >= 22 else f"bfloat16: Conv has no bfloat16 before opset 22 (model is opset {opset})"
    if dtype == T.DOUBLE:
        return ("float64: onnxruntime has no float64 Conv on CPU, so the rewritten layer could neither run "
                "nor be verified there")
    name = onnx.helper.tensor_dtype_to_string(dtype).replace("TensorProto.", "").lower()
    return f"{name} weights: Conv has no form for this type (integer FC layers are left as they are)"


Weight = Tuple[np.ndarray, Optional[Quantized]]


def weight(cand: Candidate, ctx: CheckContext) -> Union[str, Weight]:
    """The weight's shape and dtype (an array whose values are not read: the rewrite folds them, one layer at a
    time) and its quantization, or why the layer cannot be converted."""
    found = find_quantized(cand.w, ctx.consts)
    if isinstance(found, str):
        return found
    if found is not None:
        q, quant = found
        return np.broadcast_to(np.zeros((), quant.scale.dtype), q.shape), quant
    w = ctx.consts.peek(cand.w)
    if w is None:
        return not_constant(cand, ctx)
    if w.ndim != 2:
        return f"weight has shape {list(w.shape)}: only a 2-D weight is a fully connected layer"
    return w, None


def not_constant(cand: Candidate, ctx: CheckContext) -> str:
    consts = ctx.consts
    if cand.op != "Gemm":
        if consts.value(cand.x) is not None:
            return "the constant is the left operand (W @ x): not a rewritable FC layer"
        made = consts.index.producer.get(cand.w)
        if made is not None and all(consts.peek(i) is not None for i in made.input if i):
            return (f"weight '{cand.w}' is computed from constants by {made.op_type} node '{made.name}', which "
                    "fc2conv does not fold: not converted")
        if made is not None and consts.index.producer.get(cand.x) is not None:
            return ("both operands are computed at run time (an activation x activation product such as "
                    "attention scores): not an FC layer")
    return "weight is not a constant: " + consts.reason(cand.w)


BOTH_CONSTANT = ("both operands are constants (a product of two constants, which the runtime folds or computes "
                 "once): not an FC layer")


def activation(cand: Candidate, ctx: CheckContext, k: int, dims: Optional[List] = None) -> Union[str, List]:
    """The activation's dims (from shape inference unless given) with the last one K, or why the layer cannot be
    laid out: its rank is unknown or not 1 to MAX_RANK, or its features are not K; or none at all: a constant
    times a constant (DeBERTa's relative embeddings times a projection) is computed once, not an FC layer to run
    as a Conv on every inference."""
    if ctx.consts.peek(cand.x) is not None:
        return BOTH_CONSTANT
    if dims is None:
        x_type = ctx.shapes.get(cand.x)
        if x_type is None or x_type[1] is None:
            return f"rank of activation '{cand.x}' is unknown (shape inference could not derive it)"
        dims = list(x_type[1])
        if not 1 <= len(dims) <= MAX_RANK:
            return f"activation '{cand.x}' has rank {len(dims)}: ranks 1 to {MAX_RANK} are laid out as images"
    why = features_reason(cand, dims, k)
    if why:
        return why
    dims[-1] = k
    return dims


def features_reason(cand: Candidate, x_dims: List, k: int) -> Optional[str]:
    if isinstance(x_dims[-1], int) and x_dims[-1] != k:
        return f"activation '{cand.x}' has {x_dims[-1]} features but the weight expects {k}"
    return None


def plan(cand: Candidate, ctx: CheckContext, w: np.ndarray, quant: Optional[Quantized], x_dims: List, k: int,
         n: int, alpha: float = 1.0) -> Plan:
    """The layer's Plan without its bias: the Conv weight folded from the constant or quantized weight, 1x1 or
    full-kernel on a classifier head's map (mode 'full'; not with transA, nor with a per-K quantization scale)."""
    head = find_head(cand.x, k, ctx.consts.index, ctx.shapes, ctx.consts) \
        if ctx.mode == "full" and not cand.trans_a else None
    if head is not None and quant is not None and quant.varies_along_k(cand.trans_b):
        head = None
    consts, trans_b, chw = ctx.consts, cand.trans_b, head.chw if head else None
    if quant is not None:
        quant = quant.to_conv(trans_b, alpha)
        scale, key = 1.0, (cand.w, trans_b, "q")
    else:
        scale, key = alpha, (cand.w, trans_b, alpha)

    def fold_weight() -> np.ndarray:
        values = quant.source_values(consts) if quant is not None else consts.value(cand.w)
        if chw is not None:
            return fold.full_kernel_weight(values, chw, trans_b, scale)
        return fold.conv_weight(values, trans_b, scale)
    dtype = onnx.helper.np_dtype_to_tensor_dtype(w.dtype)
    return Plan(cand, list(x_dims), k, n, dtype, fold_weight, key + ((chw,) if chw else ()), layer=head or ROWS, quant=quant)
