"""The pass over one model: match every FC layer, check each, rewrite the accepted ones, report the rest."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import onnx

from .check import Plan, Skip, check
from .constants import Constants
from .emit import Emitter
from .graph_index import GraphIndex, all_names
from .layout import LAYOUTS
from .match import find_candidates
from .region import analyse
from .rewrite import Converted, rewrite
from .shapes import infer


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


@dataclass
class PassResult:
    converted: List[Converted] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("the model imports no default-domain opset")


MODES = ("full", "1x1")


def run_pass(model: onnx.ModelProto, layout: str = "spatial", mode: str = "full") -> PassResult:
    """Rewrite the FC layers of `model` in place into Convs: 1x1, or full-kernel for classifier heads."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    opset = default_opset(model)
    graph = model.graph
    index = GraphIndex(graph, all_names(graph, set()))
    consts = Constants(index, model.ir_version, opset)
    shapes = infer(model)
    result = PassResult()
    plans: List[Plan] = []
    for cand in find_candidates(list(graph.node), index):
        verdict = check(cand, consts, shapes, opset, mode)
        if isinstance(verdict, Skip):
            result.skipped.append(Skipped(cand.name, cand.op, verdict.reason))
        else:
            plans.append(verdict)
    region = analyse(list(graph.node), plans, index, consts, shapes, layout)
    result.converted = rewrite(graph, index, consts, plans, Emitter(index, opset), layout, region)
    return result
