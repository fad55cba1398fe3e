"""The pass over one model: match every FC layer, check each, rewrite the accepted ones, report the rest."""
from __future__ import annotations

import gc

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import onnx

from .check import Plan, Skip, check
from .constants import Constants
from .emit import Emitter
from .sinks import Sink
from .graph_index import GraphIndex, Names, subgraphs
from .isolate import layer_model
from .layout import LAYOUTS
from .match import find_candidates
from .region import analyse
from .rewrite import Converted, prune, rewrite
from .qdq import quantize_before_layout
from .simplify import find_chains, simplify
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
    reverted: List[Skipped] = field(default_factory=list)
    layers: Dict[str, onnx.ModelProto] = field(default_factory=dict)   # key -> the layer cut out (isolate.py)


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("the model imports no default-domain opset")


MODES = ("full", "1x1")


def _scope(node: onnx.NodeProto, attr: str) -> str:
    return f"{node.name or node.op_type}.{attr}/"


def _run_graph(graph: onnx.GraphProto, ctx: dict, outer: Optional[Constants], scope: str,
               result: PassResult) -> Set[str]:
    """Convert the FC layers of `graph` and, first, of every subgraph in it. Returns the outer-scope names that
    converted layers here no longer read (weights of an enclosing graph)."""
    names: Names = ctx["names"]
    released: Set[str] = set()
    if any(True for node in graph.node for _ in subgraphs(node)):
        consts = Constants(GraphIndex(graph, names), ctx["ir"], ctx["opset"], outer, ctx["base_dir"])
        for node in graph.node:
            for a in node.attribute:
                for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                          list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                    released |= _run_graph(g, ctx, consts, scope + _scope(node, a.name), result)
    index = GraphIndex(graph, names)
    consts = Constants(index, ctx["ir"], ctx["opset"], outer, ctx["base_dir"])
    plans: List[Plan] = []
    position = {id(n): i for i, n in enumerate(graph.node)}
    for cand in find_candidates(list(graph.node), index):
        cand.key = f"{scope}#{position[id(cand.node)]}"
        verdict = check(cand, consts, ctx["shapes"], ctx["opset"], ctx["mode"])
        if isinstance(verdict, Skip):
            result.skipped.append(Skipped(scope + cand.name, cand.op, verdict.reason))
        elif cand.key in ctx["exclude"]:
            result.reverted.append(Skipped(scope + cand.name, cand.op, ctx["exclude"][cand.key]))
        else:
            plans.append(verdict)
            if ctx["isolate"]:
                result.layers[cand.key] = layer_model(verdict, consts, ctx["shapes"], ctx["opset"], ctx["ir"])
    region = analyse(list(graph.node), plans, index, consts, ctx["shapes"], ctx["layout"])
    local = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    used_outer = {n for p in plans for n in (p.cand.w, p.cand.c) if n and n not in local}
    converted = rewrite(graph, consts, plans, ctx["emitter"], ctx["layout"], region,
                        {n for n in released if n in local})
    for c, plan in zip(converted, plans):
        c.name, c.key = scope + c.name, plan.cand.key
    result.converted.extend(converted)
    return {n for n in released if n not in local} | used_outer


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for g in subgraphs(node):
            yield from _graphs(g)


def run_pass(model: onnx.ModelProto, layout: str = "spatial", mode: str = "full",
             exclude: Optional[Dict[str, str]] = None, isolate: bool = False, base_dir: Optional[str] = None,
             sink: Optional[Sink] = None) -> PassResult:
    """Rewrite the FC layers of `model` in place into Convs: 1x1, or full-kernel for classifier heads; also
    inside If, Loop and Scan bodies. Layers whose key is in `exclude` are left alone and listed as reverted, with
    the reason given there. With `isolate`, each converted layer is also cut out on its own (result.layers).
    External tensors are read from `base_dir` when folded; with a `sink`, new weights are written to it at once."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    gc_was_on = gc.isenabled()
    gc.disable()  # the pass makes many small objects and no cycles: collections would only scale with the model
    try:
        return _run_pass(model, layout, mode, exclude, isolate, base_dir, sink)
    finally:
        if gc_was_on:
            gc.enable()


def _run_pass(model, layout, mode, exclude, isolate, base_dir, sink) -> PassResult:
    opset = default_opset(model)
    graph = model.graph
    names = Names(graph)
    ctx = {"names": names, "ir": model.ir_version, "opset": opset, "shapes": infer(model), "layout": layout,
           "mode": mode, "emitter": Emitter(names, opset, graph, sink), "exclude": exclude or {}, "isolate": isolate,
           "base_dir": base_dir}
    result = PassResult()
    _run_graph(graph, ctx, None, "", result)
    em: Emitter = ctx["emitter"]
    em.begin()
    # innermost graphs first: rebuilding a graph's node list copies the subgraphs inside it, so an enclosing graph
    # is edited only after everything within it is done
    chains = [(g, find_chains(g, em.added)) for g in _graphs(graph)] if em.added else []
    if any(c for _, c in chains):
        shapes = infer(model)
        freed: Set[str] = set()
        for g, found in reversed(chains):
            local = simplify(g, found, shapes, em) if found else set()
            em.begin()
            prune(g, local, model.ir_version)
            freed |= local
        prune(graph, freed | set(em.initializers), model.ir_version)
    if em.added and any(n.op_type == "QuantizeLinear" for g in _graphs(graph) for n in g.node):
        for g in _graphs(graph):
            quantize_before_layout(g, em.added, Constants(GraphIndex(g, names), model.ir_version, opset))
    if model.ir_version < 4:  # there, every initializer is also listed as a graph input
        new = set(em.initializers)
        graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                           for t in graph.initializer if t.name in new)
    return result
