"""The shape of every generated verification input, for each input set and strategy (inputs.py makes the values).

Each named dynamic dim (dim_param) takes one value per input set, the same for every input that names it, unless the
user's arrays or --input-shape give it one; a dim named by an expression of other names ('past_sequence_length +
1', torch's 's0 + s1') takes its value from theirs. The strategies are the fallbacks tried in order when the
original does not run on the default (inputs module docstring).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from enum import Enum
from typing import Dict, List, Optional

import numpy as np

from ..graph.shapes import dims_of


class Fill(Enum):
    """How a strategy sizes a dynamic dim that nothing else sizes."""
    NAMED = "each named dim its own small size"
    FIRST_ONE = "the first dim 1, the others the strategy's size"
    LAST = "the last dim the strategy's size, the others 1"


@dataclass(frozen=True)
class Strategy:
    fill: Fill
    size: int = 0


STRATEGIES = [Strategy(Fill.NAMED), Strategy(Fill.FIRST_ONE, 64), Strategy(Fill.FIRST_ONE, 224),
              Strategy(Fill.FIRST_ONE, 32), Strategy(Fill.LAST, 512), Strategy(Fill.LAST, 1536), Strategy(Fill.LAST, 64)]


def _dim(d, axis: int, rank: int, key: str, symbols: Dict[str, int], s: int, strategy: Strategy) -> int:
    if isinstance(d, int) and d > 0:
        return d
    if strategy.fill is Fill.FIRST_ONE:
        return 1 if axis == 0 else strategy.size
    if strategy.fill is Fill.LAST:
        return strategy.size if axis == rank - 1 else 1
    symbols.setdefault(key, 2 + len(symbols))
    return symbols[key] + s


_ARITHMETIC = (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Name, ast.Constant, ast.Load)


def _expression(d) -> Optional[ast.Expression]:
    """A dim_param that is arithmetic over names and integers ('past_sequence_length + 1', 's0 + s1', '2*s3'), as
    exporters write a dim that depends on others; None for a plain name or anything else."""
    if not isinstance(d, str) or d.isidentifier():
        return None
    try:
        tree = ast.parse(d, mode="eval")
    except SyntaxError:
        return None
    nodes = list(ast.walk(tree))
    if not all(isinstance(n, _ARITHMETIC) for n in nodes) or \
            any(isinstance(n, ast.Constant) and not isinstance(n.value, int) for n in nodes):
        return None
    return tree


def _evaluate(tree: ast.Expression, named: Dict[str, int]) -> int:
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return named[n.id]
        left, right = ev(n.left), ev(n.right)
        return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}.get(type(n.op)) \
            if not isinstance(n.op, ast.FloorDiv) else left // right
    return ev(tree)


def input_shapes(inputs, fixed: Dict[str, List[int]], given: Dict[str, np.ndarray], symbols: Dict[str, int], s: int,
                 strategy: Strategy, relations: Optional[Dict[str, str]] = None,
                 decode: Optional[str] = None) -> Dict[str, List[int]]:
    """Every generated input's shape for input set `s`. A name takes the value the user's arrays or fixed shapes
    give it, else one as _dim says. A dim named by an expression of other dims' names takes its value from theirs
    (a mask as long as past + new tokens), so a KV-cache decoder's inputs agree with one another; a name that only
    appears inside expressions gets a value as any named dim does. `relations` (dim_relations.py) give a name
    the expression the graph requires; `decode` names the new tokens' dim, 1 in every second set."""
    relations = relations or {}
    named: Dict[str, int] = {}
    for inp in inputs:
        shape = given[inp.name].shape if inp.name in given else fixed.get(inp.name)
        for d, v in zip(dims_of(inp.type)[1] or [], shape if shape is not None else []):
            if isinstance(d, str) and d.isidentifier():
                named.setdefault(d, int(v))
    if decode and s % 2 == 1 and strategy.fill is Fill.NAMED:
        named.setdefault(decode, 1)
    shapes: Dict[str, List] = {}
    for inp in (i for i in inputs if i.name not in given):
        if inp.name in fixed:
            shapes[inp.name] = list(fixed[inp.name])
            continue
        dims = [relations.get(d, d) if isinstance(d, str) and d not in named else d for d in dims_of(inp.type)[1] or []]
        shape = []
        for j, d in enumerate(dims):
            if _expression(d) is not None:
                shape.append(d)   # after every plain name has its value
            elif isinstance(d, str) and d in named:
                shape.append(named[d])
            else:
                shape.append(_dim(d, j, len(dims), d if isinstance(d, str) and d else f"{inp.name}:{j}", symbols,
                                  s, strategy))
                if isinstance(d, str) and d:
                    named[d] = shape[-1]
        shapes[inp.name] = shape
    for name, shape in shapes.items():
        for j, d in enumerate(shape):
            tree = _expression(d)
            if tree is None:
                continue
            for atom in sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(named)):
                named[atom] = _dim(atom, 1, 3, atom, symbols, s, strategy)   # as a middle dim of its strategy
            shape[j] = max(_evaluate(tree, named), 1)
    return shapes
