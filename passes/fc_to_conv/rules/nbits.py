"""onnxruntime's MatMulNBits (com.microsoft; its MatMulNBitsQuantizer and onnxruntime-genai's builder write it):
Y = A @ W^T (+ bias), W [N, K] packed in blocks of `block_size` along K, `bits` bits per element:

    B [N, n_blocks, block_size * bits / 8] uint8   element k of row n: byte (k % block_size) * bits / 8 of block
                                                   k // block_size, the low nibble first (4 bits)
    scales [N * n_blocks] (or [N, n_blocks]), zero_points packed as B per row ([N * ceil(n_blocks * bits / 8)]
    uint8), default 2^(bits - 1);   W[n, k] = (q[n, k] - z[n, k // block_size]) * s[n, k // block_size]

becomes the blocked DequantizeLinear of the same integers (opset 21), already laid out as the Conv weight:

    Conv(x, DequantizeLinear(q uint4 [N, K, 1, 1], s [N, n_blocks, 1, 1], z uint4 [N, n_blocks, 1, 1],
                             axis=1, block_size)[, bias])

(uint8 for 8 bits). The weight stays 4-bit in the file. Refused, each with its reason: 2, 3 and 5-7 bits (ONNX
has no such integer type), float zero points, a g_idx (act-order), and opsets below 21.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import numpy as np
import onnx

from . import fc
from ..files.packed import unpacked
from ..graph.constants import Constants
from ..graph.graph_index import attr
from .add_bias import fusable_add, fuse_bias
from .blocked import Blocked
from .plan import Candidate, CheckContext, Plan, Skip

T = onnx.TensorProto
_TYPES = {4: T.UINT4, 8: T.UINT8}


def unpack(packed: np.ndarray, rows: int, count: int, bits: int) -> np.ndarray:
    """[rows, count] integers of `bits` bits from their packed bytes, each row padded to whole bytes (4 bits: two
    to a byte, the low nibble first, as files/packed.py reads onnx's own 4-bit data)."""
    raw = packed.reshape(rows, -1).astype(np.uint8)
    if bits == 8:
        return raw[:, :count]
    return unpacked(raw.reshape(-1), T.UINT4, [rows, raw.shape[1] * 2])[:, :count].astype(np.uint8)


class MatMulNBitsRule:
    op = "MatMulNBits"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != self.op or node.domain != "com.microsoft" or len(node.input) < 3:
            return None
        return Candidate(node, self.op, node.input[0], node.input[1], rule=self, trans_b=True)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        node, consts = cand.node, ctx.consts
        k, n, bits, block = (int(attr(node, a, d)) for a, d in (("K", 0), ("N", 0), ("bits", 4), ("block_size", 0)))
        why = _refused(node, ctx, k, bits, block)
        if why:
            return Skip(cand, why)
        scale = consts.value(node.input[2])
        if scale is None or consts.value(node.input[1]) is None:
            return Skip(cand, "the packed weight or its scales are not constants")
        blocks = -(-k // block)
        zp = _zero_points(node, consts, n, blocks, bits)
        if isinstance(zp, str):
            return Skip(cand, zp)
        x_dims = fc.activation(cand, ctx, k)
        if isinstance(x_dims, str):
            return Skip(cand, x_dims)
        dtype = _TYPES[bits]
        quant = Blocked(None, node.input[1], scale.reshape(n, blocks, 1, 1), zp.reshape(n, blocks, 1, 1), 1,
                        block_size=block)
        name, np_type = node.input[1], onnx.helper.tensor_dtype_to_np_dtype(dtype)

        def fold_weight() -> np.ndarray:
            return unpack(consts.value(name), n, k, bits).astype(np_type).reshape(n, k, 1, 1)
        plan = Plan(cand, x_dims, k, n, onnx.helper.np_dtype_to_tensor_dtype(scale.dtype), fold_weight,
                    (name, "nbits"), quant=quant)
        return _bias(plan, ctx)


class MatMulNBitsAddRule(MatMulNBitsRule):
    """A MatMulNBits whose output only an Add reads (the builder's bias), the Add's other operand the bias."""

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        cand = super().match(node, consts)
        add = fusable_add(node, consts.index) if cand is not None and not _has(node, 5) else None
        if add is None:
            return None
        return replace(cand, add=add, c=add.input[1] if add.input[0] == node.output[0] else add.input[0])

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        plan = super().check(cand, ctx)
        if isinstance(plan, Plan):
            fuse_bias(plan, ctx)
        return plan


def _has(node: onnx.NodeProto, i: int) -> bool:
    return len(node.input) > i and bool(node.input[i])


def _refused(node: onnx.NodeProto, ctx: CheckContext, k: int, bits: int, block: int) -> Optional[str]:
    if bits not in _TYPES:
        return f"MatMulNBits with {bits}-bit weights: ONNX has no {bits}-bit integer for the Conv's DequantizeLinear"
    if ctx.opset < 21:
        return (f"block-quantized weights (MatMulNBits) need DequantizeLinear's block_size, from opset 21; the model "
                f"imports opset {ctx.opset}")
    if not k or block < 16 or block & (block - 1):
        return f"MatMulNBits with K={k} and block_size={block}: not a block layout onnxruntime defines"
    if _has(node, 4):   # (onnxruntime's kernel reads even g_idx = k // block_size otherwise than without one:
        return ("a g_idx (act-order quantization): onnxruntime's kernel reads its blocks in another order than "
                "runs of K, so no Conv weight is known to match it")   # 7.5 apart on a random layer)
    return None


def _zero_points(node: onnx.NodeProto, consts: Constants, n: int, blocks: int, bits: int):
    if not _has(node, 3):
        return np.full((n, blocks), 1 << (bits - 1), onnx.helper.tensor_dtype_to_np_dtype(_TYPES[bits]))
    zp = consts.value(node.input[3])
    if zp is None:
        return "the zero points are not constants"
    if zp.dtype != np.uint8:
        return (f"{zp.dtype} zero points (MatMulNBits's float form): DequantizeLinear's zero point is an integer "
                "of the weight's type")
    return unpack(zp, n, blocks, bits).astype(onnx.helper.tensor_dtype_to_np_dtype(_TYPES[bits]))


def _bias(plan: Plan, ctx: CheckContext) -> Union[Plan, Skip]:
    node = plan.cand.node
    if not _has(node, 5):
        return plan
    b = ctx.consts.value(node.input[5])
    if b is None or b.size != plan.n:
        return Skip(plan.cand, "MatMulNBits's bias is not a constant [N]")
    plan.bias, plan.bias_key = np.ascontiguousarray(b.reshape(-1)), (node.input[5],)
    return plan
