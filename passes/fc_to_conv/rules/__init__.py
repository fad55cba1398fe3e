"""One rule per FC form. A rule matches a node (changes nothing, judges nothing) and checks the Candidate it made:
a Plan for the rewrite, or a Skip with a one-line reason. rewrite/writer.py emits whatever Conv-like op a Plan names.

    WeightFirstRule     MatMul(W, x), Gemm(W, x): the constant on the left, Conv1d-style   weight_first.py
    WrappedGemmRule, WrappedMatMulRule   Reshape -> Gemm/MatMul -> Reshape: the FC on [..., K]   wrapped.py
    GemmRule        Gemm(A, B[, C])                                  gemm.py
    MatMulAddRule   Add(MatMul(X, B), c), the MatMul read by the Add  matmul.py
    MatMulRule      MatMul(X, B)                                     matmul.py
    EinsumRule      Einsum with one constant operand that is an FC   einsum.py
    QLinearMatMulRule, QGemmRule   QOperator layers -> QLinearConv   qlinear.py
    MatMulNBitsAddRule, MatMulNBitsRule   onnxruntime's 4/8-bit blocked FC -> blocked DQ -> Conv   nbits.py
    KnownRule       DynamicQuantizeMatMul, FusedMatMul, ...: counted, each left alone with its reason   known.py
    MatMulIntegerRule   dynamic quantization -> ConvInteger (only with --convert-dynamic)   qlinear.py
Shared by all: the weight (constant or quantized, quantized.py; block-quantized, blocked.py), its dtype and the folded Conv weight (fc.py),
and full-kernel classifier heads (head.py).

A new form is a new rule in this list, with its tests; the first rule that matches a node takes it.
"""
from __future__ import annotations

from typing import List, Optional, Protocol, Union

import onnx

from ..graph.constants import Constants
from .einsum import EinsumRule
from .gemm import GemmRule
from .known import KnownRule
from .layers import ChannelsFirst, Grouped, Head, Rows
from .matmul import MatMulAddRule, MatMulRule
from .nbits import MatMulNBitsAddRule, MatMulNBitsRule
from .plan import Candidate, CheckContext, Plan, QLinear, Quantized, Skip
from .qlinear import MatMulIntegerRule, QGemmRule, QLinearMatMulRule
from .weight_first import WeightFirstRule
from .wrapped import WrappedGemmRule, WrappedMatMulRule


class Rule(Protocol):
    op: str

    def match(self, node: onnx.NodeProto, consts: Constants) -> Optional[Candidate]:
        """A Candidate when `node` has this rule's form; reads the graph (consts.index) and may ask which tensors
        are constants, edits nothing."""

    def check(self, cand: Candidate, ctx: CheckContext) -> Union[Plan, Skip]:
        """A Plan, or a Skip with the reason the layer stays as it is."""


RULES: List[Rule] = [WeightFirstRule(), WrappedGemmRule(), GemmRule(), WrappedMatMulRule(), MatMulAddRule(), MatMulRule(),
                     EinsumRule(), QLinearMatMulRule(), QGemmRule(), MatMulNBitsAddRule(), MatMulNBitsRule(), KnownRule(),
                     MatMulIntegerRule()]


def rules(convert_dynamic: bool = False) -> List[Rule]:
    """RULES in their order, the options set: with `convert_dynamic`, MatMulInteger layers convert too (see
    MatMulIntegerRule), wherever that rule stands in the list."""
    return [MatMulIntegerRule(convert_dynamic) if isinstance(r, MatMulIntegerRule) else r for r in RULES]


def find_candidates(nodes: List[onnx.NodeProto], consts: Constants, rules: List[Rule] = RULES) -> List[Candidate]:
    """Each node that a rule matches, as the first rule that matches it found it."""
    found = []
    for node in nodes:
        cand = next((c for c in (rule.match(node, consts) for rule in rules) if c is not None), None)
        if cand is not None:
            found.append(cand)
    return found



__all__ = ["Candidate", "ChannelsFirst", "CheckContext", "Grouped", "Head", "Rows", "Plan", "QLinear", "Quantized", "Rule", "RULES", "Skip",
           "find_candidates", "rules"]
