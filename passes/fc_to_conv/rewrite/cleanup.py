"""Removing what a rewrite left unread: nodes, initializers, and the value_info of tensors that are gone.

Only nodes and initializers named by the caller are candidates; each goes once nothing reads it (subgraph
references included); a chain of producers unravels as each reader goes.
"""
from __future__ import annotations

from typing import List, Set

import onnx

from ..graph.graph_index import producers, read_counts, reads, readers, subgraphs


def prune(graph: onnx.GraphProto, names: Set[str], ir: int) -> None:
    """Drop the producers of `names` (and theirs, and so on) and the initializers among them, where unread."""
    producer = producers(graph.node)
    removable: Set[int] = set()
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:
            continue
        removable.add(id(node))
        todo.extend(i for i in node.input if i)
    nodes = drop_unused_nodes(list(graph.node), removable, graph)
    if len(nodes) != len(graph.node):
        del graph.node[:]
        graph.node.extend(nodes)
    drop_unused_initializers(graph, seen | set(names), ir)


def drop_unused_nodes(nodes: List[onnx.NodeProto], removable: Set[int], graph: onnx.GraphProto):
    """`nodes` without those of `removable` (ids) that nothing reads once the others are gone. Reference counts:
    a dropped node releases its reads, and a producer whose outputs then go unread is looked at again, so the cost
    is the size of the graph, not its depth times its size."""
    counts = read_counts(nodes, graph)
    producer = {o: n for n in nodes if id(n) in removable for o in n.output if o}
    dead: Set[int] = set()
    todo = [n for n in nodes if id(n) in removable]
    while todo:
        node = todo.pop()
        if id(node) in dead or any(counts.get(o) for o in node.output if o):
            continue
        dead.add(id(node))
        for name in reads(node):
            counts[name] -= 1
            if not counts[name] and name in producer:
                todo.append(producer[name])
    return [n for n in nodes if id(n) not in dead] if dead else nodes


def drop_unused_initializers(graph: onnx.GraphProto, names: Set[str], ir: int) -> None:
    counts = read_counts(graph.node, graph)
    dead = {t.name for t in graph.initializer if t.name in names and not counts.get(t.name)}
    if not dead:
        return
    # delete in place, from the back: rebuilding the list would copy every weight of the model
    for i in reversed([i for i, t in enumerate(graph.initializer) if t.name in dead]):
        del graph.initializer[i]
    if ir < 4:  # there, every initializer is also listed as a graph input
        inputs = [i for i in graph.input if i.name not in dead]
        del graph.input[:]
        graph.input.extend(inputs)


def drop_value_info(graph: onnx.GraphProto, names: Set[str]) -> None:
    """Forget the value_info of `names` (tensors that are gone, or whose type changed)."""
    if not names:
        return
    keep = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(keep)


def drop_identities(graph: onnx.GraphProto, added: Set[str]) -> None:
    """Remove the Identity nodes the pass made (node names in `added`; a collapsed Transpose pair leaves one):
    their readers read the input instead, or, for a graph output, the input's producer writes the output's name.
    An Identity whose output a subgraph reads by name, or whose input is also a graph output, stays."""
    nodes = list(graph.node)
    outputs = {o.name for o in graph.output}
    readers_of = readers(nodes)
    producer = producers(nodes)
    dead: Set[int] = set()
    for node in nodes:
        if node.op_type != "Identity" or node.name not in added or node.domain not in ("", "ai.onnx"):
            continue
        src, out = node.input[0], node.output[0]
        if any(True for r in readers_of.get(out, []) for _ in subgraphs(r)) or src in outputs:
            continue
        if out not in outputs:
            for r in readers_of.get(out, []):
                for i, name in enumerate(r.input):
                    if name == out:
                        r.input[i] = src
            readers_of.setdefault(src, []).extend(readers_of.pop(out, []))
        elif src in producer and readers_of.get(src) == [node]:
            maker = producer[src]
            maker.output[list(maker.output).index(src)] = out
        else:
            continue
        dead.add(id(node))
    if dead:
        keep = [n for n in nodes if id(n) not in dead]
        del graph.node[:]
        graph.node.extend(keep)
