"""The inputs of a converted layer's Conv-like node: its folded weight (made once per distinct transform, a
quantized one kept quantized), its bias, and a QOperator or integer layer's scales and zero points."""
from __future__ import annotations

from typing import Dict, List, TYPE_CHECKING

from .emit import Emitter

if TYPE_CHECKING:   # (rules/ builds on rewrite/'s layout; the rewrite reads Plans, never imports rules)
    from ..rules import Plan


class ConvInputs:
    def __init__(self, em: Emitter):
        self.em = em
        self.weights: Dict[tuple, str] = {}   # weight_key / bias_key -> the constant made for it

    def weight(self, plan: Plan) -> str:
        """The Conv weight, made once per distinct transform (weight_key); a quantized one stays quantized:
        DequantizeLinear(Q re-laid, scale, zero point)."""
        em, cand, quant = self.em, plan.cand, plan.quant
        if plan.weight_key in self.weights:
            return self.weights[plan.weight_key]
        if quant is not None:
            name = quant.emit(em, plan.fold_weight, cand.w)
        else:
            name = em.constant(cand.w + "_conv", plan.fold_weight())
        self.weights[plan.weight_key] = name
        return name

    def inputs(self, plan: Plan, x_image: str) -> List[str]:
        """The inputs of the op the plan names: Conv(x, w[, B]); QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp,
        y_scale, y_zp[, B]); ConvInteger(x, w[, x_zp, w_zp])."""
        em, cand = self.em, plan.cand
        inputs = plan.op.inputs(x_image, self.weight(plan), cand.w, em)
        if plan.bias is not None:
            if plan.bias_key not in self.weights:
                self.weights[plan.bias_key] = em.constant((cand.c or cand.w) + "_conv_bias", plan.bias)
            inputs.append(self.weights[plan.bias_key])
        elif plan.bias_input is not None:
            inputs.append(plan.bias_input)
        return inputs
