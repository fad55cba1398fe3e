"""Graph facts, in one place: who produces and who reads each tensor, which names are taken in the whole model,
the subgraphs and tensors a graph holds, and a node's attributes.

A node that holds subgraphs (If, Loop, Scan) counts as a reader of every outer-scope tensor its bodies use. The
index is built once per graph and pass run, so that no step scans the node list per layer.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, Iterator, List, Set

import onnx
from onnx import helper


_CONTROL_FLOW = {"If", "Loop", "Scan"}


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    if node.op_type not in _CONTROL_FLOW and (node.domain in ("", "ai.onnx") or not node.attribute):
        return  # only control flow holds graphs in the default domain; other domains may, so look there
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto of a graph and its subgraphs: initializers and tensor attributes (Constant values)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
        for g in subgraphs(node):
            yield from tensors(g)


def outer_names_used(graph: onnx.GraphProto) -> Set[str]:
    """Names a (sub)graph reads that it does not define itself: its references to the outer scope."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    used: Set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for g in subgraphs(node):
            used |= outer_names_used(g)
        defined.update(node.output)
    used.update(o.name for o in graph.output)
    return used - defined


def all_names(graph: onnx.GraphProto, into: Set[str]) -> Set[str]:
    """Every tensor and node name in a graph and its subgraphs (new names must avoid all of them)."""
    into.update(i.name for i in graph.input)
    into.update(o.name for o in graph.output)
    into.update(t.name for t in graph.initializer)
    into.update(v.name for v in graph.value_info)
    for node in graph.node:
        into.add(node.name)
        into.update(node.input)
        into.update(node.output)
        for g in subgraphs(node):
            all_names(g, into)
    return into


class Names:
    """Every name taken in the model, so that new tensors and nodes never collide with one in any scope."""

    def __init__(self, model_graph: onnx.GraphProto):
        self._taken = all_names(model_graph, set())

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._taken:
            name = f"{hint}_{i}"
            i += 1
        self._taken.add(name)
        return name


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ValueError("the model imports no default-domain opset")


def attr(node: onnx.NodeProto, name: str, default=None):
    """The value of a node's attribute, or `default`."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def reads(node: onnx.NodeProto) -> Set[str]:
    """The tensors a node reads: its inputs, and the outer-scope names its subgraphs use."""
    names = {n for n in node.input if n}
    for g in subgraphs(node):
        names |= outer_names_used(g)
    return names


def producers(nodes: Iterable[onnx.NodeProto]) -> Dict[str, onnx.NodeProto]:
    """tensor -> the node that makes it."""
    return {o: n for n in nodes for o in n.output if o}


def readers(nodes: Iterable[onnx.NodeProto]) -> Dict[str, List[onnx.NodeProto]]:
    """tensor -> the nodes that read it (see reads()), in node order."""
    found: Dict[str, List[onnx.NodeProto]] = defaultdict(list)
    for node in nodes:
        for name in reads(node):
            found[name].append(node)
    return found


def read_counts(nodes: Iterable[onnx.NodeProto], graph: onnx.GraphProto) -> Dict[str, int]:
    """tensor -> how many nodes read it, plus one for a graph output."""
    counts: Dict[str, int] = {o.name: 1 for o in graph.output}
    for node in nodes:
        for name in reads(node):
            counts[name] = counts.get(name, 0) + 1
    return counts


class GraphIndex:
    """Producers and readers of one graph's tensors, built once from the graph as it is; nodes made later are not in
    it (a step that edits the graph builds a new index)."""

    def __init__(self, graph: onnx.GraphProto):
        self.producer: Dict[str, onnx.NodeProto] = producers(graph.node)
        self.consumers: Dict[str, List[onnx.NodeProto]] = readers(graph.node)
        self.graph_outputs = {o.name for o in graph.output}
        self.graph_inputs = {i.name for i in graph.input}
        self.initializers = {t.name: t for t in graph.initializer}

    def is_used(self, name: str) -> bool:
        return bool(self.consumers.get(name)) or name in self.graph_outputs
