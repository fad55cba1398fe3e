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

from typing import Dict, List, Optional, Set, Tuple, Union

import numpy as np
import onnx

from .emit import Emitter
from .graph_index import producers, readers
from .shapes import TypeShape

Dim = Union[int, str]
CHAIN_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")


class _Atom:
    """One dim of the chain's input, or a piece of one; told apart by identity."""
    __slots__ = ("size",)

    def __init__(self, size: Dim):
        self.size = size


def _split(source: List[List[_Atom]], atom: _Atom, first: int) -> Tuple[_Atom, _Atom]:
    """Split a static atom into (first, size // first) where it sits in the chain's input (major part first)."""
    a, b = _Atom(first), _Atom(atom.size // first)
    for ax in source:
        for i, x in enumerate(ax):
            if x is atom:
                ax[i:i + 1] = [a, b]
                return a, b
    raise ValueError("atom not in the source")


def _unify(seq: List[_Atom], dims: List[Dim], alias: Dict[str, str]) -> Optional[List[Dim]]:
    """Name the dynamic dims of a Reshape's output after those of its input. Inference names a dim it computes
    anew ('unk__3'); a dim named on both sides is the same dim. When exactly one dynamic dim on each side is left
    unmatched and the static sizes agree, the Reshape (valid at run time) makes the two equal."""
    dims = [alias.get(d, d) if isinstance(d, str) else d for d in dims]
    have = [a.size for a in seq if isinstance(a.size, str)]
    want = [d for d in dims if isinstance(d, str)]
    left_have = [h for h in have if h not in want]
    left_want = [w for w in want if w not in have]
    if not left_have and not left_want:
        return dims
    static = lambda xs: int(np.prod([x for x in xs if isinstance(x, int)], dtype=np.int64))
    if len(left_have) == 1 and len(left_want) == 1 and static([a.size for a in seq]) == static(dims):
        alias[left_want[0]] = left_have[0]
        return [left_have[0] if d == left_want[0] else d for d in dims]
    return None


def _regroup(axes: List[List[_Atom]], dims: List[Dim], source: List[List[_Atom]],
             alias: Dict[str, str]) -> Optional[List[List[_Atom]]]:
    """Group the atoms of `axes` (in order, size-1 atoms left out) into the target `dims`, as a Reshape does;
    a static dim that needs only the major part of an atom splits it. None when the dims do not match."""
    seq = [a for ax in axes for a in ax if a.size != 1]
    dims = _unify(seq, dims, alias)
    if dims is None:
        return None
    out: List[List[_Atom]] = []
    i = 0
    for d in dims:
        group: List[_Atom] = []
        if isinstance(d, str):
            if i >= len(seq) or seq[i].size != d:
                return None
            group.append(seq[i])
            i += 1
        else:
            need = d
            while need > 1:
                if i >= len(seq) or not isinstance(seq[i].size, int):
                    return None
                atom = seq[i]
                if need % atom.size == 0:
                    group.append(atom)
                    need //= atom.size
                elif atom.size % need == 0:
                    a, b = _split(source, atom, need)
                    seq[i:i + 1] = [a, b]
                    group.append(a)
                    need = 1
                else:
                    return None
                i += 1
        out.append(group)
    return out if i == len(seq) else None


def _dims(shapes: Dict[str, TypeShape], name: str) -> Optional[List[Dim]]:
    dims = shapes.get(name, (0, None))[1]
    if dims is None or any(d is None or d == "" for d in dims):
        return None
    return list(dims)


def _shape_constant(src: List[Dim], dst: List[Dim]) -> Optional[List[int]]:
    """A Reshape shape from dims `src` to dims `dst`: ints as they are, a dynamic dim as 0 where the input has it at
    the same index, one remaining dynamic dim as -1."""
    shape: List[int] = []
    unknown = 0
    for i, d in enumerate(dst):
        if isinstance(d, int):
            shape.append(d)
        elif i < len(src) and src[i] == d:
            shape.append(0)
        else:
            shape.append(-1)
            unknown += 1
    if unknown > 1 or (0 in [d for d in dst if isinstance(d, int)] and unknown):
        return None
    return shape


def _plan(src_dims: List[Dim], steps: List[Tuple[onnx.NodeProto, List[Dim]]]):
    """Follow the chain as atoms; returns the canonical (reshape-to-atoms dims, permutation, output dims)."""
    source = [[_Atom(d)] for d in src_dims]
    axes = [list(ax) for ax in source]
    alias: Dict[str, str] = {}
    for node, out_dims in steps:
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            perm = perm if perm is not None else list(reversed(range(len(axes))))
            axes = [axes[p] for p in perm]
        else:
            if 0 in out_dims:  # (allowzero only matters for a zero in the shape; the dims say what it did)
                return None
            grouped = _regroup(axes, out_dims, source, alias)
            if grouped is None:
                return None
            axes = grouped
    src_atoms = [a for ax in source for a in ax if a.size != 1]
    dst_atoms = [a for ax in axes for a in ax if a.size != 1]
    if sorted(map(id, src_atoms)) != sorted(map(id, dst_atoms)):
        return None
    position = {id(a): i for i, a in enumerate(src_atoms)}
    return [a.size for a in src_atoms], [position[id(a)] for a in dst_atoms], _axes_dims(axes)


def _coalesce(atom_dims: List[Dim], perm: List[int]) -> Tuple[List[Dim], List[int]]:
    """Merge static atoms that stay neighbours, in order, through the permutation: fewer transposed dims."""
    groups: List[List[int]] = []
    for p in perm:
        if groups and groups[-1][-1] + 1 == p and isinstance(atom_dims[p], int) \
                and isinstance(atom_dims[groups[-1][-1]], int):
            groups[-1].append(p)
        else:
            groups.append([p])
    order = sorted(range(len(groups)), key=lambda g: groups[g][0])
    merged = [int(np.prod([atom_dims[p] for p in groups[g]])) if len(groups[g]) > 1 else atom_dims[groups[g][0]]
              for g in order]
    return merged, [order.index(g) for g in range(len(groups))]


def _candidates(atom_dims: List[Dim], perm: List[int], out_dims: List[Dim]):
    """The (atom dims, permutation) forms to try: atoms merged where they stay neighbours, and as they are; and each
    again with the output's leading 1s kept as leading axes that the permutation leaves in place, so that a
    static batch of 1 needs no Squeeze and Unsqueeze around the Transpose."""
    forms = [_coalesce(atom_dims, perm), (atom_dims, perm)]
    lead = next((i for i, d in enumerate(out_dims) if d != 1), len(out_dims))
    return forms + [([1] * lead + dims, list(range(lead)) + [p + lead for p in order]) for dims, order in forms
                    if lead]


def _axes_dims(axes: List[List[_Atom]]) -> List[Dim]:
    """The dims of a tensor given as atoms, dynamic ones named as in the chain's input."""
    dims: List[Dim] = []
    for ax in axes:
        sizes = [a.size for a in ax if a.size != 1]
        if len(sizes) > 1 and not all(isinstance(x, int) for x in sizes):
            raise ValueError("a dynamic dim merged with another")
        dims.append(int(np.prod(sizes, dtype=np.int64)) if len(sizes) != 1 else sizes[0])
    return dims


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
        src = _dims(shapes, chain[0].input[0])
        steps = [(n, _dims(shapes, n.output[0])) for n in chain]
        if src is None or any(d is None for _, d in steps):
            continue
        try:
            planned = _plan(src, steps)
        except ValueError:  # a dynamic dim merged with another: no constant shape expresses the result
            planned = None
        if planned is None:
            continue
        atom_dims, perm, out_dims = planned
        final = chain[-1].output[0]
        best: Optional[List[onnx.NodeProto]] = None
        # merged atoms make fewer transposed dims, but a reshape after the permutation may then be unable to say
        # where a dynamic dim goes: try both, keep the shorter that can be written
        for dims, order in _candidates(atom_dims, perm, out_dims):
            em.begin()
            if _emit(em, chain[0].input[0], src, dims, order, out_dims, final, final + "_collapsed") \
                    and (best is None or len(em.nodes) < len(best)):
                best = list(em.nodes)
        em.begin()
        if best is None or len(best) >= len(chain):
            continue
        replace[id(chain[-1])] = best
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
    shape = _shape_constant(src, dst)
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
