"""The constant operand of a Mul or Add second (for the qnn target): Mul(weight, x) -> Mul(x, weight), the same
function (both ops commute, broadcasting included, bit for bit).

Qualcomm's HTP fails to finalize a transformers LLaMA export, original and converted (QNN_COMMON_ERROR_MEM_ALLOC),
and the trigger is its RMSNorm's Mul(weight, normed) with the constant first: a 7-node model reproduces it, and
Mul(normed, weight) loads at the same cycles (issue 25, case 9). No other target needs it, so no other target's
model is touched.
"""
from __future__ import annotations

import onnx

from ..graph.constants import Constants

COMMUTATIVE = ("Mul", "Add")


def constants_second(graph: onnx.GraphProto, consts: Constants) -> int:
    """Swap the operands of every Mul and Add of `graph` whose first is a constant and second is not; how many."""
    swapped = 0
    for node in graph.node:
        if node.op_type not in COMMUTATIVE or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        a, b = node.input
        if consts.peek(a) is not None and consts.peek(b) is None:
            node.input[0], node.input[1] = b, a
            swapped += 1
    return swapped
