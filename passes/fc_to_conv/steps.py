"""One run of the pass over one model (Run), and the steps that follow the rewrite of its FC layers, each a
function of the run and the target that returns whether it changed the model (PassResult.steps), in this order
(AFTER_REWRITE):

    collapse_chains        merge the ways in and out with the model's own Reshapes and Transposes (simplify.py);
                           for a target that keeps the attention's chains, not those at its products
    fuse_sibling_convs     for a target that wants it (onnxruntime), the Convs that read one image as one Conv and
                           a Split (siblings.py)
    qdq_form               in a quantized model, QuantizeLinear next to the Conv and each layout op on integers a
                           QDQ node unit (qdq.py)
    constants_second       for a target that wants it (qnn), Mul(constant, x) as Mul(x, constant) (commute.py)
    unfuse_skip_norms      for a target that wants it (qnn), onnxruntime's fused skip norms as Add + norm
                           (skip_norms.py)
    view_gathers           for a target that wants it (qnn), an identity Reshape between a Gather and the Conv it
                           feeds (gather_views.py)
    list_new_initializers  below IR version 4 every initializer is also a graph input: list the new ones
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Set

import onnx

from .graph.constants import Constants
from .graph.graph_index import GraphIndex, Names, subgraphs
from .graph.shapes import TypeShape, infer
from .progress import Progress
from .result import PassResult
from .rewrite.cleanup import drop_identities, prune
from .rewrite.commute import constants_second as swap
from .rewrite.emit import Emitter
from .rewrite.gather_views import view_gathers as view
from .rewrite.siblings import fuse_siblings
from .rewrite.skip_norms import split_skip_norms
from .rewrite.qdq import layout_units, quantize_before_layout
from .rewrite.simplify import find_chains, simplify
from .targets.attention import product_tensors
from .targets.targets import Target


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """A graph and every graph inside it, outermost first."""
    yield graph
    for node in graph.node:
        for g in subgraphs(node):
            yield from graphs(g)


@dataclass
class Run:
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


def collapse_chains(run: Run, target: Target) -> bool:
    """Collapse the Reshape/Transpose chains that mix the pass's nodes with the model's; innermost graphs first:
    rebuilding a graph's node list copies the subgraphs inside it, so an enclosing graph is edited only after
    everything within it is done."""
    em, graph = run.emitter, run.model.graph
    chains = [(g, find_chains(g, em.added)) for g in graphs(graph)] if em.added else []
    if not target.collapse_head_split:  # leave the chains into and out of an attention's products
        chains = [(g, [c for c in found if not {c[0].input[0], c[-1].output[0]} & attention])
                  for g, found in chains for attention in [product_tensors(g.node, run.constants(g))]]
    if not any(c for _, c in chains):
        return False
    shapes = infer(run.model)
    freed: Set[str] = set()
    for g, found in reversed(chains):
        local = simplify(g, found, shapes, em) if found else set()
        drop_identities(g, em.added)
        prune(g, local, run.ir)
        freed |= local
    prune(graph, freed | set(em.initializers), run.ir)
    return True


def fuse_sibling_convs(run: Run, target: Target) -> bool:
    """For a target that wants it (onnxruntime), each group of the pass's 1x1 Convs that read one image as one
    Conv and a Split (siblings.py); innermost graphs first (see collapse_chains). Each layer's report notes it."""
    if not target.fuse_siblings or not run.emitter.added:
        return False
    groups = {conv: group for g in reversed(list(graphs(run.model.graph)))
              for conv, group in fuse_siblings(g, run.emitter.added, run.constants(g), run.emitter).items()}
    layer_of = {c.conv: c for c in run.result.converted}
    for conv, group in groups.items():
        layers = [layer_of[n] for n in group if n in layer_of]
        for layer in layers:
            others = ", ".join(f"'{o.name}'" for o in layers if o is not layer)
            layer.conv = conv
            layer.notes.append(f"one Conv with {others}, their weights side by side and a Split after (onnxruntime "
                               "folds the way in into its reorder only for a single Conv)")
    return bool(groups)


def qdq_form(run: Run, target: Target) -> bool:
    em, graph = run.emitter, run.model.graph
    if not em.added or not any(n.op_type == "QuantizeLinear" for g in graphs(graph) for n in g.node):
        return False
    changed = False
    for g in graphs(graph):
        consts = run.constants(g)   # reads scales and zero points, which neither step changes
        changed |= quantize_before_layout(g, em.added, consts)
        changed |= layout_units(g, em.added, consts, run.names)
    return changed


def constants_second(run: Run, target: Target) -> bool:
    """For a target that wants it (qnn), the constant operand of every Mul and Add second (commute.py)."""
    if not target.constants_second:
        return False
    return sum(swap(g, run.constants(g)) for g in graphs(run.model.graph)) > 0


def unfuse_skip_norms(run: Run, target: Target) -> bool:
    """For a target that wants it (qnn), each com.microsoft Skip(Simplified)LayerNormalization as its Add and its
    norm (skip_norms.py)."""
    if not target.split_skip_norms:
        return False
    every = list(graphs(run.model.graph))
    plain = any(n.op_type == "SimplifiedLayerNormalization" and n.domain in ("", "ai.onnx") for g in every
                for n in g.node)
    return sum(split_skip_norms(g, run.opset, run.names, plain) for g in every) > 0


def view_gathers(run: Run, target: Target) -> bool:
    """For a target that wants it (qnn), an identity Reshape after each Gather that feeds a Conv of the pass
    (gather_views.py): the QNN EP aborts on the swin_t head's Gather -> Conv."""
    if not target.view_gathers or not run.emitter.added:
        return False
    return sum(view(g, run.emitter.added, run.constants(g), run.names) for g in graphs(run.model.graph)) > 0


def list_new_initializers(run: Run, target: Target) -> bool:
    if run.model.ir_version >= 4 or not run.emitter.initializers:
        return False
    new = set(run.emitter.initializers)
    run.model.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                                 for t in run.model.graph.initializer if t.name in new)
    return True


AFTER_REWRITE = (collapse_chains, fuse_sibling_convs, qdq_form, constants_second, unfuse_skip_norms, view_gathers,
                 list_new_initializers)
