"""The pass over one model: match every FC layer with the rules, check each, rewrite the accepted ones, report the
rest; in the main graph and in every If/Loop/Scan body, innermost first.

    result = FcToConvPass(layout="spatial", mode="full", target="onnxruntime").run(model, exclude={...}, sink=...)

After the rewrite: the Reshape/Transpose chains it touched are collapsed (simplify.py; for a target that fuses the
attention, not those at its products: targets.py), QuantizeLinear moves next to the Conv and each layout op on
integers becomes a QDQ node unit (qdq.py), and below IR version 4 the new initializers are listed as graph inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterator, List, Optional, Set, Union

import onnx

from .attention import product_tensors
from .cleanup import drop_identities, prune
from .constants import Constants
from .emit import Emitter
from .graph_index import GraphIndex, Names, default_opset, subgraphs
from .isolate import layer_model
from .layout import LAYOUTS
from .progress import Progress
from .qdq import layout_units, quantize_before_layout
from .region import analyse
from .rewrite import Converted, rewrite
from .rules import RULES, Candidate, CheckContext, Plan, Rule, Skip, find_candidates
from .shapes import TypeShape, infer
from .simplify import find_chains, simplify
from .sinks import Sink
from .targets import TARGETS

MODES = ("full", "1x1")


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


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """A graph and every graph inside it, outermost first."""
    yield graph
    for node in graph.node:
        for g in subgraphs(node):
            yield from graphs(g)


@dataclass
class _Run:
    """One run of the pass over one model."""
    model: onnx.ModelProto
    opset: int
    names: Names
    shapes: Dict[str, TypeShape]
    emitter: Emitter
    exclude: Dict[str, str]
    isolate: bool
    base_dir: Optional[str]
    progress: Progress
    result: PassResult = field(default_factory=PassResult)

    @property
    def ir(self) -> int:
        return self.model.ir_version

    def constants(self, graph: onnx.GraphProto, outer: Optional[Constants] = None) -> Constants:
        return Constants(GraphIndex(graph), self.ir, self.opset, outer, self.base_dir, self.emitter.sink)


class FcToConvPass:
    def __init__(self, layout: str = "spatial", mode: str = "full", rules: Optional[List[Rule]] = None,
                 target: str = "onnxruntime"):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {tuple(TARGETS)}, got {target!r}")
        self.layout, self.mode, self.rules, self.target = layout, mode, rules or RULES, TARGETS[target]

    def run(self, model: onnx.ModelProto, exclude: Optional[Dict[str, str]] = None, isolate: bool = False,
            base_dir: Optional[str] = None, sink: Optional[Sink] = None,
            progress: Optional[Progress] = None) -> PassResult:
        """Rewrite the FC layers of `model` in place. Layers whose key is in `exclude` are left alone and listed
        as reverted, with the reason given there. With `isolate`, each converted layer is also cut out on its own
        (result.layers). External tensors are read from `base_dir` when folded; with a `sink`, new weights go
        there as they are made."""
        opset, names = default_opset(model), Names(model.graph)
        run = _Run(model, opset, names, infer(model), Emitter(names, opset, model.graph, sink), exclude or {},
                   isolate, base_dir, progress or Progress(None))
        self._graph(run, model.graph, None, "")
        run.emitter.begin()
        self._collapse_chains(run)
        self._quantize_before_layout(run)
        if model.ir_version < 4:  # there, every initializer is also listed as a graph input
            new = set(run.emitter.initializers)
            model.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                                     for t in model.graph.initializer if t.name in new)
        return run.result

    def _graph(self, run: _Run, graph: onnx.GraphProto, outer: Optional[Constants], scope: str) -> Set[str]:
        """Convert the FC layers of `graph` and, first, of every subgraph in it. Returns the outer-scope names
        that converted layers here no longer read (weights of an enclosing graph)."""
        released = self._subgraphs(run, graph, outer, scope)
        consts = run.constants(graph, outer)
        plans = self._plans(run, graph, consts, scope)
        region = analyse(list(graph.node), plans, consts.index, consts, run.shapes, self.layout,
                         splits=self.target.collapse_head_split)
        local = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
        used_outer = {n for p in plans for n in (p.cand.w, p.cand.c) if n and n not in local}
        converted = rewrite(graph, consts, plans, run.emitter, self.layout, region,
                            {n for n in released if n in local}, run.progress)
        for c, plan in zip(converted, plans):
            c.name, c.key = scope + c.name, plan.cand.key
        run.result.converted.extend(converted)
        return {n for n in released if n not in local} | used_outer

    def _subgraphs(self, run: _Run, graph: onnx.GraphProto, outer: Optional[Constants], scope: str) -> Set[str]:
        released: Set[str] = set()
        if not any(True for node in graph.node for _ in subgraphs(node)):
            return released
        consts = run.constants(graph, outer)
        for node in graph.node:
            for a in node.attribute:
                inner = [a.g] if a.type == onnx.AttributeProto.GRAPH else \
                    list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []
                for g in inner:
                    released |= self._graph(run, g, consts, f"{scope}{node.name or node.op_type}.{a.name}/")
        return released

    def _plans(self, run: _Run, graph: onnx.GraphProto, consts: Constants, scope: str) -> List[Plan]:
        """Every FC layer of `graph` checked: the Plans to rewrite; skipped and excluded ones go to the result."""
        ctx = CheckContext(consts, run.shapes, run.opset, self.mode)
        position = {id(n): i for i, n in enumerate(graph.node)}
        plans: List[Plan] = []
        cands = list(find_candidates(list(graph.node), consts.index, self.rules))
        kept: Dict[int, str] = {}   # layer -> the reason a keep of the target found it by structure
        for keep in self.target.keeps:
            for layer in keep.layers(graph.node, [c.node for c in cands], consts):
                kept.setdefault(layer, keep.reason)
        for cand in cands:
            cand = replace(cand, key=f"{scope}#{position[id(cand.node)]}")
            verdict = self._verdict(cand, ctx, kept.get(id(cand.node)))
            if isinstance(verdict, Skip):
                run.result.skipped.append(Skipped(scope + cand.name, cand.op, verdict.reason))
            elif cand.key in run.exclude:
                run.result.reverted.append(Skipped(scope + cand.name, cand.op, run.exclude[cand.key]))
            else:
                plans.append(verdict)
                if run.isolate:
                    run.result.layers[cand.key] = layer_model(verdict, consts, run.shapes, run.opset, run.ir)
        return plans

    def _verdict(self, cand: Candidate, ctx: CheckContext, kept: Optional[str]) -> Union[Plan, Skip]:
        """The rule's check, unless the target leaves the layer as it is (targets.py); a layer the rule refuses
        keeps the rule's reason."""
        if kept:
            return Skip(cand, kept)
        verdict = cand.rule.check(cand, ctx)
        reason = next((k.reason for k in self.target.keeps if k.plan(verdict)), None) \
            if isinstance(verdict, Plan) else None
        return Skip(cand, reason) if reason else verdict

    def _collapse_chains(self, run: _Run) -> None:
        """Collapse the Reshape/Transpose chains that mix the pass's nodes with the model's; innermost graphs
        first: rebuilding a graph's node list copies the subgraphs inside it, so an enclosing graph is edited
        only after everything within it is done."""
        em, graph = run.emitter, run.model.graph
        chains = [(g, find_chains(g, em.added)) for g in graphs(graph)] if em.added else []
        if not self.target.collapse_head_split:  # leave the chains into and out of an attention's products
            chains = [(g, [c for c in found if not {c[0].input[0], c[-1].output[0]} & attention])
                      for g, found in chains for attention in [product_tensors(g.node, run.constants(g))]]
        if not any(c for _, c in chains):
            return
        shapes = infer(run.model)
        freed: Set[str] = set()
        for g, found in reversed(chains):
            local = simplify(g, found, shapes, em) if found else set()
            em.begin()
            drop_identities(g, em.added)
            prune(g, local, run.ir)
            freed |= local
        prune(graph, freed | set(em.initializers), run.ir)

    @staticmethod
    def _quantize_before_layout(run: _Run) -> None:
        em, graph = run.emitter, run.model.graph
        if em.added and any(n.op_type == "QuantizeLinear" for g in graphs(graph) for n in g.node):
            for g in graphs(graph):
                consts = run.constants(g)   # reads scales and zero points, which neither step changes
                quantize_before_layout(g, em.added, consts)
                layout_units(g, em.added, consts, run.names)

