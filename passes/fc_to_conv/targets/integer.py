"""Which quantized FC layers onnxruntime runs as one integer kernel that their Conv form would lose (pure analysis,
edits nothing).

onnxruntime's QDQ fusions turn DequantizeLinear(x int8) -> MatMul/Gemm <- DequantizeLinear(W int8) into
MatMulIntegerToFloat when no QuantizeLinear reads the layer's output (TensorRT's explicit quantization, as
NVIDIA's ModelOpt writes it: Q -> DQ pairs on the inputs of each layer, none after it). As a Conv the same unit has
no integer kernel without that QuantizeLinear (QLinearConv wants one): it runs as DequantizeLinear + float Conv.
Measured (scripts/bench_models.py --quantized, 1 thread, models/quantized/): BERT 914 -> 994 us (1.087x), ViT
535 -> 601 us (1.124x), 12 MatMulIntegerToFloat -> 0 in each. A full unit (DQ -> layer -> Q, onnxruntime's
quantize_static) becomes QLinearConv and converts; so does a 16-bit one, which onnxruntime runs in float either way
(u16 BERT 0.83x, a 768-wide u16 MLP 0.75x).
"""
from __future__ import annotations

from typing import Iterable, Optional, Set

import onnx

from ..graph.constants import Constants

EIGHT_BIT = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
DOMAINS = ("", "ai.onnx")


def _eight_bit_dq(name: str, consts: Constants, constant: bool) -> Optional[onnx.NodeProto]:
    """The DequantizeLinear making `name` from 8-bit integers (of a constant, or of a run-time tensor)."""
    node = consts.index.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.domain not in DOMAINS:
        return None
    q = consts.peek(node.input[0])
    if constant:
        ok = q is not None and onnx.helper.np_dtype_to_tensor_dtype(q.dtype) in EIGHT_BIT
    else:   # a run-time tensor: 8-bit by its zero point's type; without one, QuantizeLinear's default, uint8
        zp = consts.peek(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        ok = q is None and (zp is None or onnx.helper.np_dtype_to_tensor_dtype(zp.dtype) in EIGHT_BIT)
    return node if ok else None


def _quantized_after(fc: onnx.NodeProto, consts: Constants) -> bool:
    """Whether a QuantizeLinear reads the layer's output, or that of the bias Add after it."""
    readers = consts.index.consumers.get(fc.output[0], [])
    if len(readers) == 1 and readers[0].op_type == "Add":
        readers = consts.index.consumers.get(readers[0].output[0], [])
    return any(r.op_type == "QuantizeLinear" for r in readers)


def integer_to_float(fc_nodes: Iterable[onnx.NodeProto], consts: Constants) -> Set[int]:
    """The ids of the MatMul and Gemm nodes that onnxruntime runs as MatMulIntegerToFloat."""
    found: Set[int] = set()
    for fc in fc_nodes:
        if fc.op_type not in ("MatMul", "Gemm") or fc.domain not in DOMAINS or len(fc.input) < 2:
            continue
        if (_eight_bit_dq(fc.input[0], consts, False) and _eight_bit_dq(fc.input[1], consts, True)
                and not _quantized_after(fc, consts)):
            found.add(id(fc))
    return found
