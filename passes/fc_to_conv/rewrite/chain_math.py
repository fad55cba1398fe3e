"""The arithmetic of a Reshape/Transpose chain (simplify.py): the dims of its input as "atoms", split where a
Reshape splits them, followed through every step; the chain as one Reshape to the atoms, one permutation of them
and one Reshape to the output's dims, each left out when it does nothing. Pure: no graph is edited here.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import onnx

from ..graph.shapes import TypeShape

Dim = Union[int, str]


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


def tensor_dims(shapes: Dict[str, TypeShape], name: str) -> Optional[List[Dim]]:
    dims = shapes.get(name, (0, None))[1]
    if dims is None or any(d is None or d == "" for d in dims):
        return None
    return list(dims)


def shape_constant(src: List[Dim], dst: List[Dim]) -> Optional[List[int]]:
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


def follow(src_dims: List[Dim], steps: List[Tuple[onnx.NodeProto, List[Dim]]]):
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


def candidates(atom_dims: List[Dim], perm: List[int], out_dims: List[Dim]):
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
