"""A BatchNormalization on an FC layer's rows flattened to 2-D, run on the image instead (the analysis half).

LeViT-style models normalize a linear layer's output with BatchNorm1d over its flattened rows:

    y [B, T, N] -> Reshape [-1, N] -> BatchNormalization -> Reshape [-1, T, N]

The two Reshapes only merge the leading dims and split them back, and the norm scales and shifts each of the N
channels: on the image [B, N, 1, T] it is the same BatchNormalization over axis 1, with no Reshape at all. There
the runtime folds it into the Conv before it (onnxruntime's Conv + BatchNormalization fusion; every NPU compiler
does the same), where the FC form ran it as a kernel of its own between two Reshapes.

It moves when the first Reshape goes to [-1, N] (or the rows' static count) and the second to a shape without a 0,
each tensor between read only by the next op and no graph output, and the norm's statistics are constants of N
values (inference: one output). When the second gives the rows' own dims back (their static sizes, -1 for the one
dynamic dim), the Reshapes undo each other and vanish; else (a heads split, [-1, T, H, D]) it stays and reads the
rows from the image's way out: without a 0, a Reshape's result depends only on its input's values, not its dims.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, TYPE_CHECKING

import numpy as np
import onnx

from ..graph.constants import Constants
from ..graph.graph_index import GraphIndex, attr

if TYPE_CHECKING:
    from .region import Image


def _shape(node: onnx.NodeProto, consts: Constants) -> Optional[List[int]]:
    value = consts.value(node.input[1]) if len(node.input) > 1 else None
    return [int(v) for v in value.reshape(-1)] if value is not None and value.ndim == 1 else None


def _only_reader(t: str, index: GraphIndex) -> Optional[onnx.NodeProto]:
    readers = index.consumers.get(t, [])
    return readers[0] if len(readers) == 1 and t not in index.graph_outputs else None


def _flattens(shape: Optional[List[int]], lead: Sequence, channels: int) -> bool:
    static = all(isinstance(d, int) for d in lead)
    return shape is not None and len(shape) == 2 and shape[1] == channels \
        and (shape[0] == -1 or static and shape[0] == int(np.prod(lead)))


def _restores(shape: Optional[List[int]], lead: Sequence, channels: int) -> bool:
    if shape is None or len(shape) != len(lead) + 1 or shape[-1] != channels or 0 in shape:
        return False
    if shape.count(-1) > 1:
        return False   # (so at most one dynamic dim: each must be -1)
    return all(s in (d, -1) if isinstance(d, int) else s == -1 for s, d in zip(shape, lead))


def _norm(node: onnx.NodeProto, consts: Constants, index: GraphIndex, channels: int) -> bool:
    if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx") or len(node.input) != 5:
        return False
    if attr(node, "training_mode", 0) or any(index.is_used(o) for o in node.output[1:] if o):
        return False
    params = [consts.value(i) for i in node.input[1:]]
    return all(p is not None and p.shape == (channels,) for p in params)


def flat_norm(node: onnx.NodeProto, image_of: Dict[str, "Image"], consts: Constants, index: GraphIndex
              ) -> Optional[List[onnx.NodeProto]]:
    """[Reshape, BatchNormalization, Reshape] from `node` (the first Reshape) when they run on the image as the
    norm alone (module docstring), else None."""
    image = image_of.get(node.input[0]) if node.op_type == "Reshape" and node.domain in ("", "ai.onnx") else None
    if image is None or image.family.channels_first:
        return None   # (allowzero does not matter: neither shape holds a 0)
    lead, n = image.family.lead, image.channels
    norm = _only_reader(node.output[0], index)
    back = _only_reader(norm.output[0], index) if norm is not None else None
    if back is None or not _flattens(_shape(node, consts), lead, n) or not _norm(norm, consts, index, n):
        return None
    shape = _shape(back, consts)
    if back.op_type != "Reshape" or back.domain not in ("", "ai.onnx") or back.input[0] != norm.output[0] \
            or shape is None or 0 in shape:
        return None
    return [node, norm, back]


def restores(back: onnx.NodeProto, image: "Image", consts: Constants) -> bool:
    """Whether a flat norm's second Reshape gives the rows back in their own shape (its output is the image
    then); else it reshapes them on (a heads split, [-1, T, H, D]) and reads the rows from the image's way out."""
    return _restores(_shape(back, consts), image.family.lead, image.channels)
