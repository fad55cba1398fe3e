"""Which tensors live as images between FC layers: the analysis half of the rewrite (pure, edits nothing).

After the check accepted some FC layers, each becomes a Conv whose output is an image. Element-wise ops that read
such images (Relu, GELU pieces, Dropout, an Add or Mul of a per-channel constant, ...) can run on the image too, so
that a chain fc6 -> Relu -> Dropout -> fc7 -> Relu -> fc8 stays 4-D from end to end and leaves its layout once.

    image_of   tensor -> Image(family, channels) for every tensor that will exist as an image
    moved      the element-wise nodes that will run on images
    exits      the image tensors that something outside the region still reads in the original shape

An element-wise node moves only if one of its inputs is an image, every other input is an image of the same family
and channels or a constant that broadcasts per channel, and its output (directly or through other moved nodes)
reaches an FC layer: a move that leads nowhere would only shift the exit, or add one.

A BatchNormalization over an FC output's rows flattened to 2-D, between two Reshapes that undo each other, runs on
the image as the norm alone (flat_norms.py), even where nothing after it is an FC layer: the runtime folds it into
the Conv.

With `splits`, a Split of an image's channels whose parts go only to Reshapes and Transposes (a fused QKV layer
before the heads split) runs on the image too; each part leaves, and its way out merges with the heads split.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Set, TYPE_CHECKING

import onnx

from ..graph.constants import Constants
from ..graph.graph_index import GraphIndex, attr
from ..graph.shapes import TypeShape
from .clamps import CLAMPS, FLOATS, WIDE
from .flat_norms import flat_norm, restores
from .layout import Family, image_constant
from .qdq import per_tensor

if TYPE_CHECKING:   # (rules/ builds on rewrite/'s layout; the rewrite reads Plans, never imports rules)
    from ..rules import Plan

UNARY = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softplus",
         "Softsign", "Gelu", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Identity", "Cast", "Mish",
         "ThresholdedRelu", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Clip", "Dropout"}
BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Sum"}
QDQ = {"QuantizeLinear", "DequantizeLinear"}   # per-tensor: each value on its own
QLINEAR_BINARY = {"QLinearAdd", "QLinearMul"}    # com.microsoft, QOperator models: scales and zero points scalar


@dataclass(frozen=True)
class Image:
    family: Family
    channels: int


@dataclass
class Region:
    image_of: Dict[str, Image]
    moved: Dict[int, onnx.NodeProto]
    exits: Set[str]
    reads_image: Dict[int, bool]   # plan node id -> its activation comes from an image of the region
    as_max_min: Dict[int, int] = field(default_factory=dict)   # moved Relu / Clip id -> its float type (clamps.py)
    ranked: Set[int] = field(default_factory=set)   # moved binary ops whose single values go [1, 1, 1, 1] (writer.py)


def _movable(node: onnx.NodeProto, image_of: Dict[str, Image], consts: Constants, index: GraphIndex,
             shapes: Dict[str, TypeShape]) -> Optional[Image]:
    if not node.output or not (node.domain in ("", "ai.onnx") and node.op_type in UNARY | BINARY | QDQ
                                or node.domain == "com.microsoft" and node.op_type in QLINEAR_BINARY):
        return None
    if node.op_type in QDQ and not per_tensor(node, consts):
        return None  # a per-channel scale runs along the last dim, which the image moves to axis 1
    if any(index.is_used(o) for o in node.output[1:] if o):
        return None  # e.g. Dropout's mask
    images = [image_of[i] for i in node.input if i in image_of]
    if not images or any(im.family.key != images[0].family.key or im.channels != images[0].channels
                         for im in images):
        return None
    image = images[0]
    rank = len(image.family.lead) + 1
    for i in node.input:
        if not i or i in image_of:
            continue
        value = consts.value(i)
        if value is None or value.ndim > rank:
            return None
        try:
            image_constant(value, image.channels, image.family.channels_first)
        except ValueError:
            return None
    out_dims = shapes.get(node.output[0], (0, None))[1]
    if out_dims is not None and len(out_dims) != rank:
        return None
    return image


def _channel_split(node: onnx.NodeProto, image_of: Dict[str, Image], consts: Constants, index: GraphIndex
                   ) -> Optional[List[Image]]:
    """A Split of an image's channels (the original's last axis; a fused QKV layer's output), whose every part is
    read only by Reshapes and Transposes (the heads split): the parts are images of the same family, each with its
    share of the channels, and their ways out merge with those Reshapes and Transposes (simplify.py)."""
    image = image_of.get(node.input[0]) if node.op_type == "Split" and node.domain in ("", "ai.onnx") else None
    if image is None or image.family.channels_first \
            or attr(node, "axis", 0) not in (-1, len(image.family.lead)):
        return None   # (channels first, W @ x: the last axis is the rows)
    if any(r.op_type not in ("Reshape", "Transpose") or r.input[0] != o for o in node.output
           for r in index.consumers.get(o, [])) or any(o in index.graph_outputs for o in node.output):
        return None
    sizes = attr(node, "split")
    if len(node.input) > 1 and node.input[1]:
        value = consts.value(node.input[1])
        if value is None:
            return None
        sizes = [int(v) for v in value]
    if sizes is None:  # equal parts; from opset 18 num_outputs of them, the last one smaller
        step = -(-image.channels // attr(node, "num_outputs", len(node.output)))
        sizes = [min(step, image.channels - i * step) for i in range(len(node.output))]
    if len(sizes) != len(node.output) or sum(sizes) != image.channels or min(sizes) <= 0:
        return None
    return [Image(image.family, size) for size in sizes]


def analyse(nodes: List[onnx.NodeProto], plans: List[Plan], index: GraphIndex, consts: Constants,
            shapes: Dict[str, TypeShape], layout: str, splits: bool = False, clamps: bool = False) -> Region:
    plan_of = {id(p.cand.node): p for p in plans}
    image_of: Dict[str, Image] = {}
    moved: Dict[int, onnx.NodeProto] = {}
    for node in nodes:
        plan = plan_of.get(id(node))
        if plan is not None:
            if plan.layer.makes_image(plan):
                family = replace(plan.layer.input_family(plan, layout, image_of), transposed=False)
                image_of[plan.output] = Image(family, plan.n)
            continue
        if id(node) in moved:
            continue   # (the norm and the second Reshape of a flat norm)
        norm = flat_norm(node, image_of, consts, index)
        if norm is not None:
            image = image_of[node.input[0]]
            moved.update((id(n), n) for n in norm)
            image_of.update((n.output[0], image) for n in norm[:2 + restores(norm[2], image, consts)])
            continue
        parts = _channel_split(node, image_of, consts, index) if splits else None
        if parts is not None:
            moved[id(node)] = node
            image_of.update(zip(node.output, parts))
            continue
        image = _movable(node, image_of, consts, index, shapes)
        if image is not None:
            moved[id(node)] = node
            image_of[node.output[0]] = image

    reader_plan = {**plan_of, **{id(n): p for p in plans for n in p.bypassed}}  # a wrapped Gemm reads through

    def image_readers(t: str) -> List[onnx.NodeProto]:
        out = []
        for c in index.consumers.get(t, []):
            p = reader_plan.get(id(c))
            if id(c) in moved or (p is not None and p.layer.reads_image(p) and p.cand.x == t
                                  and t not in (p.cand.w, p.cand.c)):
                out.append(c)
        return out

    changed = True
    while changed:
        changed = False
        for key, node in reversed(list(moved.items())):  # from the back: a trailing run unravels in one sweep
            if node.op_type in ("Split", "Reshape", "BatchNormalization"):
                continue  # kept for the merge of a Split's ways out with the heads split; a flat norm for its fold
            if not any(id(r) in reader_plan or id(r) in moved for r in image_readers(node.output[0])):
                del moved[key]
                del image_of[node.output[0]]
                changed = True

    exits = {t for t in image_of
             if t in index.graph_outputs or len(image_readers(t)) < len(index.consumers.get(t, []))}
    reads_image = {id(p.cand.node): p.layer.reads_image(p) and p.cand.x in image_of for p in plans}
    return Region(image_of, moved, exits, reads_image,
                  _as_max_min(moved, image_of, index, shapes) if clamps else {})


def _as_max_min(moved: Dict[int, onnx.NodeProto], image_of: Dict[str, Image], index: GraphIndex,
                shapes: Dict[str, TypeShape]) -> Dict[int, int]:
    """The moved float Relus and Clips on wide images (clamps.py), outside QDQ units, with their element type."""
    found = {}
    for key, node in moved.items():
        elem = shapes.get(node.output[0], (0, None))[0]
        source = index.producer.get(node.input[0])
        if node.op_type in CLAMPS and node.domain in ("", "ai.onnx") and elem in FLOATS \
                and image_of[node.output[0]].family.wide(WIDE) \
                and not (source is not None and source.op_type == "DequantizeLinear") \
                and not any(r.op_type == "QuantizeLinear" for r in index.consumers.get(node.output[0], [])):
            found[key] = elem
    return found

