"""Relu and Clip on a wide image as Max and Min, the same function (for the qnn target).

    Relu(x)                ->  Max(x, 0)
    Clip(x, lo, hi)        ->  Min(Max(x, lo), hi)      (a bound left out: that side is not clamped)

Measured on Qualcomm's HTP emulator (onnxruntime-qnn 2.7.0, fp16), three FC layers with Relus between them as
1x1 Convs, cycles against the MatMul model's: with 16 rows or more on the image's width, Max runs at 0.36x-0.80x
(K 32 to 256) where the Relu runs at 0.71x-1.73x (32 x 16 tokens: Relu 1.73x, Max 0.80x; 128 x 64: Relu 1.00x, Max
0.49x; ReLU6 on 32 x 16 as Clip 1.63x, as Max and Min 0.94x); with fewer rows the Relu runs at 0.98x-1.09x and Max
at 1.02x-1.22x, so there the Relu stays (region.py decides, on the image's family: layout.Family.wide).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import onnx
from onnx import helper

from ..graph.graph_index import attr
from .emit import Emitter

CLAMPS = ("Relu", "Clip")
WIDE = 16          # rows on the image from which Max measured faster than Relu
FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


def _bounds(node: onnx.NodeProto, inputs: List[str], em: Emitter, elem: int) -> List[Optional[str]]:
    """A Clip's lower and upper bound as tensors (None: not clamped on that side); a Relu's is 0 below."""
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    if node.op_type == "Relu":
        return [em.constant(node.output[0] + "_zero", np.array(0, dtype)), None]
    if em.opset < 11:   # Clip-6: the bounds are attributes
        return [None if v is None else em.constant(f"{node.output[0]}_{side}", np.array(v, dtype))
                for v, side in ((attr(node, "min"), "min"), (attr(node, "max"), "max"))]
    return [inputs[i] if len(inputs) > i and inputs[i] else None for i in (1, 2)]


def as_max_min(node: onnx.NodeProto, inputs: List[str], out: str, em: Emitter, elem: int) -> None:
    """`node` (a Relu or Clip of element type `elem`) on `inputs`, as Max and Min making `out`."""
    lo, hi = _bounds(node, inputs, em, elem)
    steps = [(op, bound) for op, bound in (("Max", lo), ("Min", hi)) if bound is not None] or [("Identity", None)]
    x, hint = inputs[0], (node.name or node.output[0]) + "_image"
    for i, (op, bound) in enumerate(steps):
        y = out if i == len(steps) - 1 else em.names.fresh(f"{out}_{op.lower()}")
        em.nodes.append(helper.make_node(op, [x] + ([bound] if bound else []), [y],
                                         name=em.names.fresh(f"{hint}_{op.lower()}")))
        x = y
