"""The kinds of converted layer. A rule's Plan holds one (`Plan.layer`), and the kind owns what differs between
them: the family of the image its Conv reads, whether it reads and makes images of the region (region.py), its
Conv weight's shape and kernel, the nodes it makes unnecessary, and how it emits its Conv-like node.

    Rows            x [..., K], channels last: the layout's way in (layout.py), a 1x1 Conv      fc.py
    ChannelsFirst   W @ x: x [K, M] or [B, K, T], the channels in place, a 1x1 Conv             weight_first.py
    Head            a classifier head: an H x W kernel straight on the [N, C, H, W] map         head.py
    Grouped         a weight per group: its own way in and out around a grouped Conv           grouped.py

`emit(writer, plan, hint)` is given the rewrite's writer (rewrite/writer.py), which offers the emitter (`em`), the
layer's Conv (`conv`), the shared way in (`way_in`) and the region's images (`image_of_input`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import onnx

from ..graph.shapes import Dim
from ..rewrite.layout import Family, Kind, family_for


class Rows:
    """The FC layer on x [..., K]: rows laid out as the pass's layout says, channels last."""
    label = ""                   # the report's layout column: the pass's layout
    group = 1
    kernel: Tuple[int, int] = (1, 1)

    def family(self, plan, layout: str) -> Family:
        """The family the layout's way in gives the layer's own activation."""
        cand = plan.cand
        return family_for(layout, cand.x, plan.x_dims, cand.trans_a)

    def input_family(self, plan, layout: str, image_of: Dict[str, "object"]) -> Family:
        """The family of the image the Conv reads: the region's image of the activation, or its own way in."""
        if self.reads_image(plan) and plan.cand.x in image_of:
            return image_of[plan.cand.x].family
        return self.family(plan, layout)

    def reads_image(self, plan) -> bool:
        """Whether the Conv may read the region's image of its activation (a transA Gemm reads it transposed)."""
        return not plan.cand.trans_a

    def makes_image(self, plan) -> bool:
        """Whether the Conv's output stays an image of the region (a row-varying C is added in the rows)."""
        return plan.post_add is None

    def weight_shape(self, plan) -> List[int]:
        return [plan.n, plan.k, 1, 1]

    def before(self, plan) -> List[onnx.NodeProto]:
        """The nodes before the layer that its Conv makes unnecessary (removed, and cut out with it)."""
        return []

    def input(self, plan) -> str:
        """The tensor the layer reads, cut out on its own (isolate.py)."""
        return plan.cand.x

    def emit(self, writer, plan, hint: str) -> str:
        if writer.region.reads_image[id(plan.cand.node)]:
            x_image = writer.image[plan.cand.x]
        else:
            x_image = writer.way_in(plan, self.family(plan, writer.layout), hint)
        return writer.conv(plan, x_image, hint)


class ChannelsFirst(Rows):
    """W @ x: the channels are the second-to-last dim and already in place (layout.Kind.CHANNELS_FIRST)."""
    label = "channels-first"

    def family(self, plan, layout: str) -> Family:
        cand = plan.cand
        return family_for(layout, cand.x, plan.x_dims, cand.trans_a, channels_first=True)


@dataclass
class Head(Rows):
    """An FC layer that reads a flattened [N, C, H, W] map: it becomes a Conv with an H x W kernel on the map."""
    map: str = ""
    chw: Tuple[int, int, int] = (0, 0, 0)
    rows: Dim = None             # N, the map's batch dim
    flatten: onnx.NodeProto = None   # the Flatten or Reshape that the Conv makes unnecessary
    through: List[onnx.NodeProto] = field(default_factory=list)   # a QDQ pair after it: QuantizeLinear, DequantizeLinear
    label = "full-kernel"

    @property
    def kernel(self) -> Tuple[int, int]:
        return self.chw[1:]

    def input_family(self, plan, layout: str, image_of) -> Family:
        return Family(Kind.BATCH, (self.rows,))

    def reads_image(self, plan) -> bool:
        return False

    def weight_shape(self, plan) -> List[int]:
        return [plan.n, *self.chw]

    def before(self, plan) -> List[onnx.NodeProto]:
        return [self.flatten] + self.through

    def input(self, plan) -> str:
        return self.map

    def emit(self, writer, plan, hint: str) -> str:
        """The Conv on the map; in a QDQ model on DequantizeLinear(QuantizeLinear(map)) with the pair's scales, as
        the pair stood after the Flatten."""
        x = self.map
        for node in self.through:
            x = writer.em.again(node, x, node.output[0] + "_map")
        return writer.conv(plan, x, hint)


@dataclass
class Grouped(Rows):
    """G FC layers side by side (a weight [G, K, N]): one grouped Conv, laid out and back on its own. Channels
    first (W [G, N, K] @ x [.., G, K, T]), the channels are in place: no Transpose either way."""
    group: int = 1
    channels_first: bool = False
    label = "grouped"

    def reads_image(self, plan) -> bool:
        return False

    def makes_image(self, plan) -> bool:
        return False

    def weight_shape(self, plan) -> List[int]:
        return [self.group * plan.n, plan.k, 1, 1]

    def emit(self, writer, plan, hint: str) -> str:
        em, g, k, n = writer.em, self.group, plan.k, plan.n
        batched = len(plan.x_dims) == 4
        perm = [0, 1, 3, 2] if batched else [0, 2, 1]
        x = plan.cand.x if self.channels_first else em.transpose(plan.cand.x, perm, hint + "_kt")
        x = em.reshape(x, [0, g * k, 1, -1] if batched else [1, g * k, 1, -1], hint + "_image")
        conv_name, conv_out = em.names.fresh(hint + "_conv"), em.names.fresh(plan.output + "_conv")
        em.nodes.append(onnx.helper.make_node("Conv", [x, writer.convs.weight(plan)], [conv_out], name=conv_name,
                                              kernel_shape=[1, 1], group=g))
        groups = [0, g, n, -1] if batched else [g, n, -1]
        if self.channels_first:
            em.reshape(conv_out, groups, hint + "_groups", plan.output)
            return conv_name
        y = em.reshape(conv_out, groups, hint + "_groups")
        em.transpose(y, perm, hint + "_rows", plan.output)
        return conv_name


ROWS = Rows()
CHANNELS_FIRST = ChannelsFirst()
