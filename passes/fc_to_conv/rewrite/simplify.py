"""Collapse chains of Reshape and Transpose that the rewrite created or extended into at most
Reshape -> Transpose -> Reshape, and cancel the pairs that undo each other.

The ways in and out of the image layout meet the model's own Reshapes and Transposes: the way out of a K
projection (Reshape [0,0,-1], Transpose) runs straight into the heads split (Reshape [B,T,H,dh], Transpose to
[B,H,dh,T]); together they only reshape [B,C,1,T] into [B,H,dh,T]. Each chain is followed through its shapes (from
shape inference, symbolic dims by name) as a sequence of "atoms": the dims of its input, split where a Reshape
splits them. A chain of any length is then one Reshape to the atoms, one permutation of the atoms, and one Reshape
to the output's dims, and each of the three is left out when it does nothing.

Only chains that mix nodes the pass added with the model's own are touched, and only when the result has fewer
nodes. A chain whose dims cannot be followed (an unknown dim, a dynamic dim that a Reshape would have to compute)
stays.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set

import onnx

from ..graph.graph_index import producers, readers
from ..graph.shapes import TypeShape
from .chain_math import Dim, candidates, follow, shape_constant, tensor_dims
from .emit import Emitter

CHAIN_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")


def find_chains(graph: onnx.GraphProto, added: Set[str]) -> List[List[onnx.NodeProto]]:
    """The chains worth a look: two or more Reshape/Transpose nodes in a row, each intermediate tensor read by the
    next node only, mixing nodes the pass added with nodes of the model. (A chain of the pass's own nodes is
    already as short as it gets.) Needs no shapes, so a model without such chains costs no shape inference."""
    nodes = list(graph.node)
    reader = readers(nodes)
    producer = producers(nodes)
    outputs = {o.name for o in graph.output}
    in_chain = lambda n: n.op_type in CHAIN_OPS and n.domain in ("", "ai.onnx") and len(n.output) == 1
    sole_reader = lambda t: reader[t][0] if len(reader.get(t, [])) == 1 and t not in outputs else None
    chains = []
    for node in nodes:
        if not in_chain(node):
            continue
        prev = producer.get(node.input[0])
        if prev is not None and in_chain(prev) and sole_reader(node.input[0]) is node:
            continue  # not the start of a chain
        chain = [node]
        while True:
            nxt = sole_reader(chain[-1].output[0])
            if nxt is None or not in_chain(nxt) or nxt.input[0] != chain[-1].output[0]:
                break
            chain.append(nxt)
        ours = sum(n.name in added for n in chain)
        if len(chain) >= 2 and 0 < ours < len(chain):
            chains.append(chain)
    return chains


def simplify(graph: onnx.GraphProto, chains: List[List[onnx.NodeProto]], shapes: Dict[str, TypeShape],
             em: Emitter) -> Set[str]:
    """Collapse the `chains` (find_chains) of `graph`. Returns the inputs the removed nodes read besides their
    data (shape tensors), whose producers may now be unused."""
    replace: Dict[int, List[onnx.NodeProto]] = {}
    drop: Set[int] = set()
    freed: Set[str] = set()
    for chain in chains:
        src = tensor_dims(shapes, chain[0].input[0])
        steps = [(n, tensor_dims(shapes, n.output[0])) for n in chain]
        if src is None or any(d is None for _, d in steps):
            continue
        try:
            planned = follow(src, steps)
        except ValueError:  # a dynamic dim merged with another: no constant shape expresses the result
            planned = None
        if planned is None:
            continue
        atom_dims, perm, out_dims = planned
        final = chain[-1].output[0]
        best: Optional[List[onnx.NodeProto]] = None
        # merged atoms make fewer transposed dims, but a reshape after the permutation may then be unable to say
        # where a dynamic dim goes: try both, keep the shorter that can be written
        for dims, order in candidates(atom_dims, perm, out_dims):
            written = _emit(em, chain[0].input[0], src, dims, order, out_dims, final, final + "_collapsed")
            tried = em.trial()
            if written and (best is None or len(tried) < len(best)):
                best = tried
        if best is None or len(best) >= len(chain):
            continue
        replace[id(chain[-1])] = em.keep(best)
        drop.update(id(n) for n in chain[:-1])
        freed.update(i for n in chain for i in n.input[1:] if i)
    if replace:
        new_nodes: List[onnx.NodeProto] = []
        for node in graph.node:
            if id(node) not in drop:
                new_nodes.extend(replace.get(id(node), [node]))
        del graph.node[:]
        graph.node.extend(new_nodes)
    return freed


def _inserted_ones(short: List[Dim], long: List[Dim]) -> Optional[List[int]]:
    """The axes of `long` that are 1s inserted into `short` (None when `long` is not `short` with 1s added)."""
    axes, i = [], 0
    for j, d in enumerate(long):
        if i < len(short) and d == short[i]:
            i += 1
        elif d == 1:
            axes.append(j)
        else:
            return None
    return axes if i == len(short) else None


def _reshape(em: Emitter, x: str, src: List[Dim], dst: List[Dim], hint: str, out: Optional[str] = None):
    """x from dims `src` to `dst`: a Squeeze or Unsqueeze where only 1s go or come (exact whatever the dynamic
    dims), else a Reshape with a constant shape. None when no constant shape can say it."""
    if len(dst) < len(src) and _inserted_ones(dst, src) is not None:
        return em.squeeze(x, _inserted_ones(dst, src), hint, out)
    if len(dst) > len(src) and _inserted_ones(src, dst) is not None:
        return em.unsqueeze(x, _inserted_ones(src, dst), hint, out)
    shape = shape_constant(src, dst)
    if shape is not None:
        return em.reshape(x, shape, hint, out)
    if [d for d in src if d != 1] == [d for d in dst if d != 1]:  # only 1s move: drop them all, add the new ones
        squeezed = em.squeeze(x, [i for i, d in enumerate(src) if d == 1], hint + "_squeezed")
        return em.unsqueeze(squeezed, [i for i, d in enumerate(dst) if d == 1], hint, out)
    return None


def _emit(em: Emitter, x: str, src: List[Dim], atom_dims: List[Dim], perm: List[int], out_dims: List[Dim],
          final: str, hint: str) -> bool:
    """Reshape to the atoms, permute, reshape to the output; each step only where it changes something."""
    if perm == list(range(len(perm))):
        if src == out_dims:
            em.node("Identity", [x], hint, final)
            return True
        return _reshape(em, x, src, out_dims, hint, final) is not None
    cur = x
    if src != atom_dims:
        cur = _reshape(em, cur, src, atom_dims, hint + "_atoms")
        if cur is None:
            return False
    permuted = [atom_dims[p] for p in perm]
    if permuted == out_dims:
        em.transpose(cur, perm, hint, final)
        return True
    return _reshape(em, em.transpose(cur, perm, hint + "_perm"), permuted, out_dims, hint, final) is not None
