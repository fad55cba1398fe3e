"""The pass's walks over the graph cost the size of the graph, not a power of its depth.

A constant subgraph that each level reads more than once (T5's relative position buckets, a decoder's shared
rotary tables) made the cleanup's walk from a folded weight to its producers visit level i 3**i times: 16 levels
took 27 s, 18 took 245 s, a 16-layer LLaMA export never finished. These tests fail on such a walk: the first counts
the producer look-ups, the second converts a 60-level model under an alarm."""
import signal

import numpy as np
from onnx import helper

from builders import assert_converted, init, make_model, ops, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.rewrite import cleanup
from passes.fc_to_conv.graph import graph_index
from passes.fc_to_conv.rewrite.cleanup import drop_unused_nodes
from passes.fc_to_conv.graph.constants import Constants
from passes.fc_to_conv.graph.graph_index import GraphIndex

LEVELS = 60


def deep_shared_model(levels: int, k: int = 8, n: int = 4):
    """W = c_levels with c_{i+1} = (c_i + c_i) - c_i: level i+1 reads level i three times; every c_i equals c_0."""
    nodes = []
    prev = "c0"
    for i in range(levels):
        nodes.append(helper.make_node("Add", [prev, prev], [f"d{i}"], name=f"add{i}"))
        nodes.append(helper.make_node("Sub", [f"d{i}", prev], [f"c{i + 1}"], name=f"sub{i}"))
        prev = f"c{i + 1}"
    nodes.append(helper.make_node("MatMul", ["X", prev], ["Y"], name="fc"))
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    return make_model(nodes, [vi("X", ["B", k])], [vi("Y", ["B", n])], [init("c0", w)])


class _CountingDict(dict):
    def __init__(self, *a):
        super().__init__(*a)
        self.lookups = 0

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)


def test_source_nodes_visits_each_producer_once():
    m = deep_shared_model(LEVELS)
    index = GraphIndex(m.graph)
    index.producer = _CountingDict(index.producer)
    found = Constants(index, m.ir_version, 17).source_nodes([f"c{LEVELS}"])
    assert sorted(n.name for n in found) == sorted(n.name for n in m.graph.node if n.op_type != "MatMul")
    # one look-up per tensor pushed: each node's inputs once (2 per level, c0 included) and the start
    assert index.producer.lookups <= 4 * LEVELS + 1, index.producer.lookups


def test_drop_unused_nodes_unravels_a_deep_chain_at_once(monkeypatch):
    """Every node of the chain is removable and nothing reads its end any more: all go, the MatMul stays, and
    each node's reads are listed about twice (the counts, then its release), not once per round of removal."""
    calls, real = [], graph_index.reads
    for module in (graph_index, cleanup):
        monkeypatch.setattr(module, "reads", lambda node: calls.append(1) or real(node), raising=False)
    m = deep_shared_model(LEVELS)
    fc = m.graph.node[-1]
    chain = [n for n in m.graph.node if n is not fc]
    del fc.input[1]
    fc.input.append("c0")
    kept = drop_unused_nodes(list(m.graph.node), {id(n) for n in chain}, m.graph)
    assert [n.name for n in kept] == ["fc"]
    assert len(calls) <= 2 * len(m.graph.node), len(calls)


def test_drop_unused_nodes_keeps_what_is_still_read():
    """Half-way up, a graph output reads d29: the nodes it needs stay, those above it go."""
    m = deep_shared_model(LEVELS)
    fc = m.graph.node[-1]
    del fc.input[1]
    fc.input.append("c0")
    m.graph.output.append(vi("d29", ["B", 4]))
    chain = [n for n in m.graph.node if n is not fc]
    kept = {n.name for n in drop_unused_nodes(list(m.graph.node), {id(n) for n in chain}, m.graph)}
    assert kept == {"fc", "add29"} | {f"add{i}" for i in range(29)} | {f"sub{i}" for i in range(29)}


def test_deep_shared_constant_subgraph_converts_in_seconds():
    def too_long(*_):
        raise TimeoutError(f"{LEVELS} levels of a shared constant subgraph still converting after 60 s")
    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)
    try:
        model, report = convert(deep_shared_model(LEVELS))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert_converted(report, ["fc"])
    assert ops(model) == ["Reshape", "Transpose", "Conv", "Transpose", "Reshape"], ops(model)
