"""FC forms that are counted and reported, and left as they are, each with its reason."""
from __future__ import annotations

from typing import Optional

import onnx

from ..graph.constants import Constants
from .plan import Candidate, CheckContext, Skip

REASONS = {
    ("com.microsoft", "DynamicQuantizeMatMul"): "dynamic quantization (DynamicQuantizeMatMul, onnxruntime's fused "
                                                "form): ConvInteger is about 12x slower on onnxruntime's CPU",
    ("com.microsoft", "MatMulIntegerToFloat"): "dynamic quantization (MatMulIntegerToFloat, onnxruntime's fused "
                                               "form): ConvInteger is about 12x slower on onnxruntime's CPU",
    ("com.microsoft", "FusedMatMul"): "onnxruntime's FusedMatMul (transposes and alpha folded in): not converted",
}


class KnownRule:
    """Matches the ops in REASONS and refuses each with its reason."""
    op = "known"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if (node.domain, node.op_type) not in REASONS or len(node.input) < 2:
            return None
        return Candidate(node, node.op_type, node.input[0], node.input[1], rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Skip:
        return Skip(cand, REASONS[(cand.node.domain, cand.op)])
