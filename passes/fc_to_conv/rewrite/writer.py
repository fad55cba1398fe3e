"""Rewrite: replace checked FC layers by Conv nodes, in place, and drop what they leave unused.

Runs only on Plans the check accepted, with the Region that region.py worked out. In node order:
    FC layer      image = the region's image of its activation, or the layout's way in (shared by every layer
                  that reads the same activation, e.g. Q, K and V); Conv(image, W_conv[, b_conv]) with a 1x1
                  kernel, or an H x W kernel straight on the map for a classifier head
    moved op      the same op on images, per-channel constants re-laid as [1, C, 1, 1]
    exits         an image that something outside the region reads leaves the layout right after it is made,
                  under its original tensor name, so every reader and graph output stays wired
New nodes take the replaced node's place in the node list, which keeps the list topologically sorted.
A weight shared by several layers is folded once per distinct transform (same source, transB, alpha, kernel).
Afterwards the original weights, their Constant and folded producers, and a head's Flatten are removed when
nothing reads them any more.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, TYPE_CHECKING

import numpy as np
import onnx

from ..graph.constants import Constants
from ..progress import Progress
from ..result import Converted
from .cleanup import drop_unused_initializers, drop_unused_nodes, drop_value_info
from .clamps import as_max_min
from .conv_inputs import ConvInputs
from .emit import Emitter
from .layout import Family, image_constant
from .qdq import per_tensor
from .region import Region

if TYPE_CHECKING:   # (rules/ builds on rewrite/'s layout; the rewrite reads Plans, never imports rules)
    from ..rules import Plan


class _Writer:
    def __init__(self, em: Emitter, consts: Constants, region: Region, layout: str):
        self.em, self.consts, self.region, self.layout = em, consts, region, layout
        self.image: Dict[str, str] = {}      # original tensor -> its image tensor
        self.entries: Dict[str, str] = {}    # activation -> image made by the layout's way in
        self.convs = ConvInputs(em)
        self.images = _Images(em, consts, region, self.image)
        self.hoisted: List[onnx.NodeProto] = []   # DequantizeLinear nodes now applied after the way in

    def layer(self, plan: Plan) -> str:
        """Emit the layer's nodes, as its kind says (rules/layers.py); the name of its Conv-like node."""
        return plan.layer.emit(self, plan, plan.cand.node.name or plan.output)

    def conv(self, plan: Plan, x_image: str, hint: str) -> str:
        """The Conv-like node the plan names, on `x_image`; its output is the image of the layer's output, or,
        with a row-varying Gemm C, leaves the layout at once and has C added in the original shape."""
        em, cand = self.em, plan.cand
        conv_name = em.names.fresh(hint + "_conv")
        conv_out = em.names.fresh(plan.output + "_conv")
        em.nodes.append(onnx.helper.make_node(plan.op.name, self.convs.inputs(plan, x_image), [conv_out], name=conv_name,
                                              kernel_shape=list(plan.layer.kernel)))
        if plan.post_add is None:
            self.image[plan.output] = conv_out
            return conv_name
        family = plan.layer.input_family(plan, self.layout, self.region.image_of)  # the family the Conv's input has
        rows = em.names.fresh(plan.output + "_rows")
        family.leave(em, conv_out, plan.n, rows, hint)
        if isinstance(plan.post_add, np.ndarray):
            term = em.constant(cand.c + "_post", plan.post_add)
        elif plan.post_scale != 1.0:
            beta = em.constant(cand.node.output[0] + "_beta", np.array(plan.post_scale, dtype=plan.np_dtype))
            term = em.node("Mul", [plan.post_add, beta], hint + "_beta_c")
        else:
            term = plan.post_add
        em.node("Add", [rows, term], hint + "_bias", plan.output)
        return conv_name

    def way_in(self, plan: Plan, family: Family, hint: str) -> str:
        """The image of a layer's activation in `family`, made once per activation (layers reading it share it). An
        activation that a per-tensor DequantizeLinear makes is laid out as integers and dequantized after, so that
        the DequantizeLinear stays right before the Conv, where quantized compilers look for it (per-tensor
        dequantization commutes with Transpose and Reshape)."""
        cand, em = plan.cand, self.em
        if cand.x in self.entries and not cand.trans_a:
            return self.entries[cand.x]
        dq = per_tensor_dequantize(cand.x, self.consts)
        if dq is None:
            image = family.enter(em, cand.x, plan.k, hint)
        else:
            image = em.again(dq, family.enter(em, dq.input[0], plan.k, hint), hint + "_dequantized")
            self.hoisted.append(dq)
        if not cand.trans_a:
            self.entries[cand.x] = image
        return image


class _Images:
    """The images of the element-wise ops moved between layers (region.py), and the exits from the layout."""

    def __init__(self, em: Emitter, consts: Constants, region: Region, image: Dict[str, str]):
        self.em, self.consts, self.region, self.image = em, consts, region, image
        self.relaid: Set[str] = set()             # constants of moved ops, now read in their image form
        self._ranks: Dict[str, str] = {}          # single values of moved binary ops -> their [1, 1, 1, 1] form

    def moved(self, node: onnx.NodeProto) -> None:
        em = self.em
        if node.op_type == "Split":
            return self._split(node)
        if node.op_type == "Reshape":   # a flat norm's (flat_norms.py)
            return self._flat_reshape(node)
        if node.op_type == "BatchNormalization":   # ... and its norm, over the image's channels (axis 1)
            self.image[node.output[0]] = self.em.again(node, self.image[node.input[0]], node.output[0] + "_image")
            return
        image = self.region.image_of[node.output[0]]
        inputs = []
        for i in node.input:
            if i in self.image:
                inputs.append(self.image[i])
                continue
            cf = image.family.channels_first
            relaid = image_constant(self.consts.value(i), image.channels, cf) if i else None
            if relaid is not None:
                self.relaid.add(i)
                inputs.append(self._image_constant(i, relaid, image.channels, cf))
            else:
                inputs.append(self._ranked(i) if i and id(node) in self.region.ranked else i)
        out = em.names.fresh(node.output[0] + "_image")
        self.image[node.output[0]] = out
        if id(node) in self.region.as_max_min:
            return as_max_min(node, inputs, out, em, self.region.as_max_min[id(node)])
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.name = em.names.fresh((node.name or node.output[0]) + "_image")
        del new.input[:]
        new.input.extend(inputs)
        del new.output[:]
        new.output.append(out)
        em.nodes.append(new)

    def _flat_reshape(self, node: onnx.NodeProto) -> None:
        """One of a flat norm's Reshapes: on the image nothing, when its output is the image too; else the second,
        which reshapes the rows on: it reads them from the image's way out."""
        if node.output[0] in self.region.image_of:
            self.image[node.output[0]] = self.image[node.input[0]]
            self.relaid.update(i for i in node.input[1:] if i)
            return
        image = self.region.image_of[node.input[0]]
        rows = self.em.names.fresh(node.input[0] + "_rows")
        image.family.leave(self.em, self.image[node.input[0]], image.channels, rows, rows)
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[0] = rows
        self.em.nodes.append(new)

    def _split(self, node: onnx.NodeProto) -> None:
        """The Split on the image's channels (axis 1), its sizes as they were (region._channel_split)."""
        outs = self.em.again_all(node, self.image[node.input[0]], [o + "_image" for o in node.output],
                                 (node.name or "split") + "_image", axis=1)
        self.image.update(zip(node.output, outs))

    def exits(self, produced: List[str]) -> None:
        for t in produced:
            if t in self.region.exits:
                image = self.region.image_of[t]
                image.family.leave(self.em, self.image[t], image.channels, t, t)
    def _ranked(self, name: str) -> str:
        """A single value as [1, 1, 1, 1], once per value: onnxruntime broadcasts a scalar (or [1]) over an image
        [B, C, 1, T] one row of T at a time (its broadcast stops at the 1), 2x an Add's time at T = 16; a
        rank-4 operand runs as one span (README, Layout). One that a DequantizeLinear makes stays as it is, and
        so do those of the ops onnxruntime fuses (targets/fusions.py: region.ranked leaves them out)."""
        value = self.consts.value(name)
        if value.ndim == 4 or per_tensor_dequantize(name, self.consts) is not None:
            return name
        if name not in self._ranks:
            self.relaid.add(name)
            self._ranks[name] = self.em.constant(name + "_image", value.reshape(1, 1, 1, 1))
        return self._ranks[name]

    def _image_constant(self, name: str, relaid: np.ndarray, channels: int, channels_first: bool) -> str:
        """A per-channel constant operand re-laid as [1, C, 1, 1]; one that a per-tensor DequantizeLinear makes of
        integers stays quantized: its integers are re-laid and dequantized again (a QDQ Add stays a QDQ Add)."""
        dq = per_tensor_dequantize(name, self.consts)
        q = self.consts.value(dq.input[0]) if dq is not None else None
        if q is None:
            return self.em.constant(name + "_image", relaid)
        q_image = self.em.constant(dq.input[0] + "_image", image_constant(q, channels, channels_first))
        return self.em.again(dq, q_image, name + "_image")


def per_tensor_dequantize(name: str, consts: Constants) -> Optional[onnx.NodeProto]:
    """The per-tensor DequantizeLinear that makes `name`, if one does."""
    node = consts.index.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
        return None
    return node if per_tensor(node, consts) else None


def rewrite(graph: onnx.GraphProto, consts: Constants, plans: List[Plan], em: Emitter, layout: str,
            region: Region, released: Set[str] = frozenset(), progress: Optional[Progress] = None) -> List[Converted]:
    """Rewrite `graph` in place. `released` names weights that rewrites inside subgraphs no longer read: they go
    too if nothing else does. New constants go straight into the main graph (Emitter.constant)."""
    progress = progress or Progress(None)
    plan_of = {id(p.cand.node): p for p in plans}
    fused = {id(p.cand.add) for p in plans if p.fuse_add} | {id(n) for p in plans for n in p.absorbed}
    writer = _Writer(em, consts, region, layout)
    names_before = _tensor_names(graph)
    new_nodes: List[onnx.NodeProto] = []
    done: List[Converted] = []
    for node in graph.node:
        if id(node) in fused:
            continue
        plan = plan_of.get(id(node))
        if plan is not None:
            conv = writer.layer(plan)
            writer.images.exits([plan.output])
            done.append(_converted(plan, conv, layout))
            progress.update("rewriting layers", len(done), len(plans))
        elif id(node) in region.moved:
            writer.images.moved(node)
            writer.images.exits(list(node.output))
        else:
            new_nodes.append(node)
            continue
        new_nodes.extend(em.take())
    sources = {name for p in plans for name in (p.cand.w, p.cand.c) if name} | set(released) | writer.images.relaid
    sources |= {i for p in plans for n in p.absorbed for i in n.input[1:] if i}   # a wrapped Gemm's Reshape shape
    removable = {id(n) for n in consts.source_nodes(sources)}
    removable |= {id(n) for p in plans for n in p.layer.before(p)}
    removable |= {id(n) for n in writer.hoisted} | {id(n) for p in plans for n in p.bypassed}
    sources |= {i for n in new_nodes if id(n) in removable for i in n.input if i}
    new_nodes = drop_unused_nodes(new_nodes, removable, graph)
    progress.end()
    del graph.node[:]
    graph.node.extend(new_nodes)
    drop_unused_initializers(graph, sources, consts.ir_version)
    drop_value_info(graph, names_before - _tensor_names(graph))
    return done


def _converted(plan: Plan, conv: str, layout: str) -> Converted:
    cand = plan.cand
    return Converted(cand.name, cand.op, list(plan.x_dims), [plan.n, plan.k] if cand.trans_b else [plan.k, plan.n],
                     conv, plan.weight_shape, plan.layer.label or layout, str(plan.np_dtype),
                     "x".join(map(str, plan.layer.kernel)),
                     (cand.add.name or cand.add.output[0]) if plan.fuse_add else None, plan.op.name, plan.notes,
                     cand.key)


def _tensor_names(graph: onnx.GraphProto) -> Set[str]:
    names = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    for node in graph.node:
        names.update(node.output)
    return names
