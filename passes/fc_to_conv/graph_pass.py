"""The pass over one model: match every FC layer with the rules, check each, rewrite the accepted ones, report the
rest; in the main graph and in every If/Loop/Scan body, innermost first.

    result = FcToConvPass(layout="spatial", mode="full", target="onnxruntime").run(model, exclude={...}, sink=...)

After the rewrite, the steps of steps.AFTER_REWRITE run in order: collapse the Reshape/Transpose chains it touched,
put a quantized model in QDQ form, and below IR version 4 list the new initializers as graph inputs.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Set, Union

import onnx

from .files.sinks import Sink
from .graph.constants import Constants
from .graph.graph_index import Names, default_opset, subgraphs
from .graph.shapes import infer
from .progress import Progress
from .result import PassResult, Skipped
from .rewrite.emit import Emitter
from .rewrite.layout import LAYOUTS
from .rewrite.region import analyse
from .rewrite.writer import rewrite
from .rules import RULES, Candidate, CheckContext, Plan, Rule, Skip, find_candidates
from .steps import AFTER_REWRITE, Run
from .targets.fusions import ranked
from .targets.targets import TARGETS
from .tune import Tuned
from .rules.isolate import layer_model

MODES = ("full", "1x1")


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
        run = Run(model, opset, names, infer(model), Emitter(names, opset, model.graph, sink), exclude or {},
                   isolate, base_dir, progress or Progress(None))
        run.result.model = model
        self._graph(run, model.graph, None, "")
        run.result.steps["convert"] = bool(run.result.converted)
        for step in AFTER_REWRITE:
            run.result.steps[step.__name__] = step(run, self.target)
        return run.result

    def _graph(self, run: Run, graph: onnx.GraphProto, outer: Optional[Constants], scope: str) -> Set[str]:
        """Convert the FC layers of `graph` and, first, of every subgraph in it. Returns the outer-scope names
        that converted layers here no longer read (weights of an enclosing graph)."""
        released = self._subgraphs(run, graph, outer, scope)
        consts = run.constants(graph, outer)
        plans = self._plans(run, graph, consts, scope)
        region = analyse(list(graph.node), plans, consts.index, consts, run.shapes, self.layout,
                         splits=self.target.collapse_head_split, clamps=self.target.clamps_as_max_min)
        if self.target.ranked_scalars:
            region.ranked = ranked(region, consts, run.shapes, run.model)
        local = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
        used_outer = {n for p in plans for n in (p.cand.w, p.cand.c) if n and n not in local}
        converted = rewrite(graph, consts, plans, run.emitter, self.layout, region,
                            {n for n in released if n in local}, run.progress)
        for c in converted:
            c.name = scope + c.name
        run.result.converted.extend(converted)
        return {n for n in released if n not in local} | used_outer

    def _subgraphs(self, run: Run, graph: onnx.GraphProto, outer: Optional[Constants], scope: str) -> Set[str]:
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

    def _plans(self, run: Run, graph: onnx.GraphProto, consts: Constants, scope: str) -> List[Plan]:
        """Every FC layer of `graph` checked: the Plans to rewrite; skipped and excluded ones go to the result."""
        ctx = CheckContext(consts, run.shapes, run.opset, self.mode)
        position = {id(n): i for i, n in enumerate(graph.node)}
        plans: List[Plan] = []
        cands = list(find_candidates(list(graph.node), consts, self.rules))
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
                why = run.exclude[cand.key]   # a Tuned reason: left as FC by measurement (--tune), not reverted
                (run.result.tuned if isinstance(why, Tuned) else run.result.reverted).append(
                    Skipped(scope + cand.name, cand.op, why))
            else:
                plans.append(verdict)
                if run.isolate:
                    run.result.layers[cand.key] = layer_model(verdict, consts, run.shapes, run.opset, run.ir)
        return plans

    def _verdict(self, cand: Candidate, ctx: CheckContext, kept: Optional[str]) -> Union[Plan, Skip]:
        """The rule's check, unless the target leaves the layer as it is (targets/targets.py); a layer the rule refuses
        keeps the rule's reason."""
        if kept:
            return Skip(cand, kept)
        verdict = cand.rule.check(cand, ctx)
        reason = next((k.reason for k in self.target.keeps if k.plan(verdict)), None) \
            if isinstance(verdict, Plan) else None
        return Skip(cand, reason) if reason else verdict
