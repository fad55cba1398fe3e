"""Einsum with one constant 2-D operand whose equation is a fully connected layer, as TensorFlow/Keras and JAX
exporters write Dense layers on 3-D activations:

    Einsum("bsk,kn->bsn", x, W)   Einsum("...k,nk->...n", x, W)   Einsum("kn,bk", W, x)   (any letters)

x's last dim is the one contracted, W is 2-D ([K, N] or [N, K]), and the output is x's other dims in order then
N; the implicit form (no "->") means the letters used once, in alphabetical order. Such an Einsum is the MatMul
x @ W (or x @ W^T) and converts as one; anything else is refused with the reason.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import onnx

from . import fc
from ..graph.constants import Constants
from ..graph.graph_index import attr
from .plan import Candidate, CheckContext, Plan, Skip


class EinsumRule:
    op = "Einsum"

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        if node.op_type != "Einsum" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            return None
        return Candidate(node, "Einsum", node.input[0], node.input[1], rule=self)

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        consts = ctx.consts
        constant = [consts.peek(i) is not None for i in cand.node.input]
        if constant == [False, False]:
            return Skip(cand, "both operands are computed at run time (an activation x activation product such as "
                              "attention scores): not an FC layer")
        if constant == [True, True]:
            return Skip(cand, "both operands are constants: nothing to convert")
        w_index = constant.index(True)
        parsed = _fc_equation(_equation(cand.node), w_index)
        if isinstance(parsed, str):
            return Skip(cand, f"Einsum '{_equation(cand.node)}': {parsed}")
        trans_b = parsed
        cand = replace(cand, x=cand.node.input[1 - w_index], w=cand.node.input[w_index], trans_b=trans_b)
        w = consts.peek(cand.w)
        why = fc.dtype_reason(onnx.helper.np_dtype_to_tensor_dtype(w.dtype), ctx.opset)
        if why:
            return Skip(cand, why)
        k, n = (w.shape[1], w.shape[0]) if trans_b else w.shape
        x_dims = fc.activation(cand, ctx, k)
        if isinstance(x_dims, str):
            return Skip(cand, x_dims)
        return fc.plan(cand, ctx, w, None, x_dims, k, n)


def _equation(node: onnx.NodeProto) -> str:
    eq = attr(node, "equation", b"")
    return (eq.decode() if isinstance(eq, bytes) else eq).replace(" ", "")


def _fc_equation(equation: str, w_index: int) -> Union[str, bool]:
    """transB (W written [N, K]) for an FC equation, else why it is not one."""
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return "not two operands"
    w_term, x_term = terms[w_index], terms[1 - w_index]
    if "." in w_term or len(w_term) != 2 or len(set(w_term)) != 2:
        return "the constant operand is not a 2-D weight"
    x_letters = x_term.replace("...", "")
    if len(set(x_letters)) != len(x_letters) or (("..." in x_term) and not x_term.startswith("...")):
        return "repeated letters (a diagonal) or an ellipsis not in front"
    shared = [c for c in w_term if c in x_letters]
    if len(shared) != 1 or x_letters[-1] != shared[0]:
        return "it does not contract the activation's last dim with one dim of the weight"
    k = shared[0]
    n = w_term.replace(k, "")
    if n in x_letters:
        return "the weight's output dim also labels a dim of the activation"
    expected = x_term[:-1] + n
    out = rhs if "->" in equation else _implicit_output(terms)
    if out != expected:
        return f"the output '{out}' is not the activation's dims then the weight's ('{expected}')"
    return w_term == n + k


def _implicit_output(terms) -> str:
    letters = "".join(t.replace("...", "") for t in terms)
    once = sorted(c for c in set(letters) if letters.count(c) == 1)
    return ("..." if any("..." in t for t in terms) else "") + "".join(once)
