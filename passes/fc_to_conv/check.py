"""Check: decide for one matched FC layer whether it can become a 1x1 Conv, and fold its weights if so.

Returns a Plan (everything the rewrite needs) or a Skip with a one-line reason. Nothing here edits the graph.
The Conv weight is folded only when the rewrite asks for it (Plan.fold_weight), one layer at a time, so that a
large model never holds all its folded weights at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import onnx

from . import fold
from .constants import Constants
from .graph_index import GraphIndex
from .match import Candidate, attr
from .shapes import Dim, TypeShape

T = onnx.TensorProto
CONV_DTYPES = {T.FLOAT: "float32", T.FLOAT16: "float16", T.BFLOAT16: "bfloat16"}
MAX_RANK = 4


@dataclass
class Head:
    """An FC layer that reads a flattened [N, C, H, W] map: it becomes a Conv with an H x W kernel on the map."""
    map: str
    chw: Tuple[int, int, int]
    rows: Dim                    # N, the map's batch dim
    flatten: onnx.NodeProto      # the Flatten or Reshape that the Conv makes unnecessary


@dataclass
class Quantized:
    """A weight that reaches the layer through DequantizeLinear(q, scale, zero_point) of constants: the Conv
    keeps it quantized, as DequantizeLinear of the re-laid integer weight."""
    node: onnx.NodeProto
    q: str
    scale: np.ndarray
    zero_point: Optional[np.ndarray]
    axis: int                    # on the Conv weight


@dataclass
class Plan:
    cand: Candidate
    x_dims: List[Dim]            # dims of the activation as it enters the layer
    k: int
    n: int
    dtype: int
    fold_weight: Callable[[], np.ndarray]   # -> the Conv weight [N, K, 1, 1] (or [N, C, H, W] for a head)
    weight_key: tuple            # equal keys share one folded initializer
    bias: Optional[np.ndarray] = None
    bias_key: Optional[tuple] = None
    fuse_add: bool = False       # the matched Add is folded into the Conv bias
    post_add: Union[None, str, np.ndarray] = None   # a row-varying Gemm C, added after the Conv
    post_scale: float = 1.0      # beta for a non-constant C
    head: Optional[Head] = None  # full-kernel conversion of a classifier head
    quant: Optional[Quantized] = None
    notes: List[str] = field(default_factory=list)

    @property
    def np_dtype(self) -> np.dtype:
        return onnx.helper.tensor_dtype_to_np_dtype(self.dtype)

    @property
    def weight_shape(self) -> List[int]:
        return [self.n, self.head.chw[0], *self.head.chw[1:]] if self.head else [self.n, self.k, 1, 1]

    @property
    def kernel(self) -> Tuple[int, int]:
        return self.head.chw[1:] if self.head else (1, 1)

    @property
    def output(self) -> str:
        """The tensor the rewritten nodes must produce under its original name."""
        return self.cand.add.output[0] if self.fuse_add else self.cand.node.output[0]


@dataclass
class Skip:
    cand: Candidate
    reason: str


def _dtype_reason(dtype: int, opset: int) -> Optional[str]:
    if dtype in (T.FLOAT, T.FLOAT16):
        return None
    if dtype == T.BFLOAT16:
        return None if opset >= 22 else f"bfloat16: Conv has no bfloat16 before opset 22 (model is opset {opset})"
    if dtype == T.DOUBLE:
        return ("float64: onnxruntime has no float64 Conv on CPU, so the rewritten layer could neither run "
                "nor be verified there")
    name = onnx.helper.tensor_dtype_to_string(dtype).replace("TensorProto.", "").lower()
    return f"{name} weights: Conv has no form for this type (integer FC layers are left as they are)"


def quantized_axis_is_k(axis: int, trans_b: bool) -> bool:
    return fold.quantized_conv_axis(axis, trans_b) == 1


def find_head(x: str, k: int, index: GraphIndex, shapes: Dict[str, TypeShape]) -> Optional[Head]:
    """x = Flatten(map, axis=1) or Reshape(map, [N, C*H*W]) of a [N, C, H, W] map with static C, H, W."""
    node = index.producer.get(x)
    if node is None or node.op_type not in ("Flatten", "Reshape") or node.domain not in ("", "ai.onnx"):
        return None
    dims = shapes.get(node.input[0], (0, None))[1]
    x_dims = shapes.get(x, (0, None))[1]
    if not dims or len(dims) != 4 or not all(isinstance(d, int) for d in dims[1:]):
        return None
    c, h, w = dims[1:]
    if c * h * w != k or not x_dims or len(x_dims) != 2 or x_dims[1] != k:
        return None
    if node.op_type == "Flatten" and attr(node, "axis", 1) not in (1, -3):
        return None
    return Head(node.input[0], (c, h, w), dims[0], node)


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


def check(cand: Candidate, consts: Constants, shapes: Dict[str, TypeShape], opset: int,
          mode: str = "full") -> Union[Plan, Skip]:
    node = cand.node
    if cand.op == "Gemm" and len(node.input) < 2 or cand.op == "MatMul" and len(node.input) != 2:
        return Skip(cand, f"{cand.op} with {len(node.input)} inputs")
    quant = find_quantized(cand.w, consts)
    if isinstance(quant, str):
        return Skip(cand, quant)
    if quant is not None:
        q, quant = quant
        w = np.broadcast_to(np.zeros((), quant.scale.dtype), q.shape)  # only its shape and dtype are read
    else:
        w = consts.peek(cand.w)  # the values are read when the rewrite folds them, one layer at a time
    if w is None:
        x_const = consts.value(cand.x) if cand.op == "MatMul" else None
        if x_const is not None:
            return Skip(cand, "the constant is the left operand (W @ x): not a rewritable FC layer")
        if cand.op == "MatMul" and consts.index.producer.get(cand.w) is not None \
                and consts.index.producer.get(cand.x) is not None:
            return Skip(cand, "both operands are computed at run time (an activation x activation product such as "
                              "attention scores): not an FC layer")
        return Skip(cand, "weight is not a constant: " + consts.reason(cand.w))
    if w.ndim != 2:
        return Skip(cand, f"weight has shape {list(w.shape)}: only a 2-D weight is a fully connected layer")
    dtype = onnx.helper.np_dtype_to_tensor_dtype(w.dtype)
    why = _dtype_reason(dtype, opset)
    if why:
        return Skip(cand, why)

    if cand.op == "Gemm":
        k, n = (w.shape[1], w.shape[0]) if cand.trans_b else w.shape
        x_type = shapes.get(cand.x, (dtype, None))
        x_dims = x_type[1] if x_type[1] is not None and len(x_type[1]) == 2 else [None, None]
        x_dims = list(x_dims)
        if cand.trans_a:  # A is [K, M]: record it as [M, K] and let the layout read it transposed
            x_dims = [x_dims[1], x_dims[0]]
    else:
        k, n = w.shape
        x_type = shapes.get(cand.x)
        if x_type is None or x_type[1] is None:
            return Skip(cand, f"rank of activation '{cand.x}' is unknown (shape inference could not derive it)")
        x_dims = list(x_type[1])
        if not 1 <= len(x_dims) <= MAX_RANK:
            return Skip(cand, f"activation '{cand.x}' has rank {len(x_dims)}: ranks 1 to {MAX_RANK} are laid out "
                              "as images")
    if isinstance(x_dims[-1], int) and x_dims[-1] != k:
        return Skip(cand, f"activation '{cand.x}' has {x_dims[-1]} features but the weight expects {k}")
    x_dims[-1] = k

    alpha = cand.alpha if cand.op == "Gemm" else 1.0
    head = find_head(cand.x, k, consts.index, shapes) if mode == "full" and not cand.trans_a else None
    w_name, trans_b = cand.w, cand.trans_b
    if quant is not None:
        if head is not None and quant.scale.size > 1 and quantized_axis_is_k(quant.axis, trans_b):
            head = None  # a per-input-channel scale cannot follow K into C x H x W
        quant.axis = fold.quantized_conv_axis(quant.axis, trans_b)
        if alpha != 1.0:
            quant.scale = (quant.scale.astype(np.float64) * alpha).astype(quant.scale.dtype)
        q_name = quant.q
        if head is not None:
            chw = head.chw
            plan = Plan(cand, x_dims, k, n, dtype, lambda: fold.full_kernel_weight(consts.value(q_name), chw, trans_b),
                        weight_key=(cand.w, cand.trans_b, "q", head.chw), head=head, quant=quant)
        else:
            plan = Plan(cand, x_dims, k, n, dtype, lambda: fold.conv_weight(consts.value(q_name), trans_b),
                        weight_key=(cand.w, cand.trans_b, "q"), quant=quant)
    elif head is not None:
        chw = head.chw
        plan = Plan(cand, x_dims, k, n, dtype,
                    lambda: fold.full_kernel_weight(consts.value(w_name), chw, trans_b, alpha),
                    weight_key=(cand.w, cand.trans_b, alpha, head.chw), head=head)
    else:
        plan = Plan(cand, x_dims, k, n, dtype, lambda: fold.conv_weight(consts.value(w_name), trans_b, alpha),
                    weight_key=(cand.w, cand.trans_b, alpha))
    out_rank = len(x_dims) if cand.op == "Gemm" or len(x_dims) > 1 else 1

    if cand.op == "Gemm" and cand.c is not None:
        c = consts.value(cand.c)
        if c is None:
            plan.post_add, plan.post_scale = cand.c, cand.beta
            plan.notes.append(f"bias '{cand.c}' is not a constant: kept as an Add after the Conv")
        elif fold.per_channel_bias(c, n, 2):
            plan.bias, plan.bias_key = fold.conv_bias(c, n, cand.beta, w.dtype), (cand.c, cand.beta)
        else:
            plan.post_add = fold.post_add_term(c, cand.beta).astype(w.dtype)
            plan.notes.append(f"bias '{cand.c}' of shape {list(c.shape)} varies along the rows: kept as an Add "
                              "after the Conv")
    elif cand.add is not None:
        c = consts.value(cand.c)
        add = cand.add.name or cand.add.output[0]
        if c is None:
            plan.notes.append(f"Add '{add}' kept: its operand is not a constant")
        elif c.dtype != w.dtype:
            plan.notes.append(f"Add '{add}' kept: its operand is {c.dtype}, the weight {w.dtype}")
        elif not fold.per_channel_bias(c, n, out_rank):
            plan.notes.append(f"Add '{add}' kept: its operand of shape {list(c.shape)} is not a per-channel bias "
                              f"of the [..., {n}] output")
        else:
            plan.bias, plan.bias_key, plan.fuse_add = fold.conv_bias(c, n), (cand.c, 1.0), True
    return plan
