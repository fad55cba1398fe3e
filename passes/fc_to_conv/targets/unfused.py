"""Which FC layers feed an element-wise chain that a compiler fuses after a FullyConnected but not after a Conv
(pure analysis, edits nothing).

Qualcomm's QNN HTP runs GPT-2's tanh-approximated GELU, written out as Pow, Mul, Add, Tanh and Mul, as one fused
kernel when it reads a FullyConnected's output; after a Conv every op of it runs on its own: on the QNN HTP
emulator, GPT-2's converted model took 2.9x-3.3x the original's cycles, 2.4M cycles on each Tanh alone; with the
two layers that feed the GELUs left as FC, 1.04x. (The erf form of GELU is fused by onnxruntime's QNN EP into one
QNN Gelu op wherever it stands, and the Conv's own activations, Relu and Clip, fuse into the Conv.)

A layer feeds such a chain when one of `ops` reads its output, within 8 nodes, through view ops and element-wise
ops only, one of them a Pow (the GELU's x^3): BERT's and ALBERT's poolers (Gemm -> Tanh) and Gemma2's soft-capped
lm_head (Div -> Tanh -> Mul) are no GELU and convert.
"""
from __future__ import annotations

from typing import FrozenSet, Iterable, Set

import onnx

from ..graph.graph_index import GraphIndex

VIEWS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Cast"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Tanh", "Sigmoid", "Erf"}
DEPTH = 8


def feeding(fc_nodes: Iterable[onnx.NodeProto], index: GraphIndex, ops: FrozenSet[str],
            via: FrozenSet[str] = frozenset()) -> Set[int]:
    """The ids of the nodes in `fc_nodes` whose output reaches an op of `ops` within DEPTH nodes, through VIEWS and
    ELEMENTWISE, and, when `via` names ops, through one of them on the way (a tanh GELU's Pow: a pooler's Tanh
    straight after its layer, or Gemma2's soft-capping Div -> Tanh, is no GELU). The depth bound keeps the walk
    from following the residual stream's Adds through the whole model from every layer (quadratic in the layers);
    a GELU's Tanh is 5 or 6 ops after its layer."""
    found: Set[int] = set()
    if not ops:
        return found
    for fc in fc_nodes:
        level, seen = [(o, not via) for o in fc.output if o], set()
        for _ in range(DEPTH):
            nxt = []
            for r, passed in ((r, p) for t, p in level for r in index.consumers.get(t, [])
                              if r.domain in ("", "ai.onnx")):
                if r.op_type in ops and passed:
                    found.add(id(fc))
                elif (r.op_type in VIEWS or r.op_type in ELEMENTWISE) and (id(r), passed) not in seen:
                    seen.add((id(r), passed))
                    nxt.extend((o, passed or r.op_type in via) for o in r.output if o)
            if id(fc) in found or not nxt:
                break
            level = nxt
    return found
