"""The graph shape each downstream runtime runs fastest: what `--target` chooses, from measurements
(scripts/bench_models.py; the README's Performance section has the tables).

    blocks    transformer blocks stay in the image layout: a LayerNormalization over the channels runs on the
              image (normalize.py) and the residual stream joins the layout where it meets an FC layer's output
              (region.py), so a block leaves [B, C, 1, T] only at the attention's head split and at the model's
              edges
    collapse_head_split
              the ways in and out merge with the model's own Reshapes and Transposes (simplify.py) for every
              chain; without it, not for the chains that end in an attention's activation x activation product
              or start at one (attention.product_tensors). With it, a fused QKV layer's Split also runs on the
              image (region.py), so that each part's way out merges with its heads split.

onnxruntime  collapse everything, no blocks. onnxruntime fuses LayerNormalization over the last axis into one
             kernel and runs every Transpose it is given; the channel-axis normalization is plain ops there, and
             the collapsed chains move the least data.
openvino     blocks; the chains at the attention products stay as the model wrote them. OpenVINO's CPU plugin
             keeps a 1x1 Conv's data channels-last, so the ways in and out cancel against its own reorders (with
             static input shapes), and it fuses the attention (MatMul -> Softmax -> MatMul) into one kernel only
             when Q, K and V arrive through the heads split's own Reshape -> Transpose and the context leaves
             through its own Transpose: a collapsed chain hides the pattern. Every other chain collapses (on
             GPT-2 a 2-D [M, K] way in and out of the attention's output layer costs OpenVINO 36 us a
             Transpose). Its MVN fusion does not take a normalization over axis 1, but the plain ops cost about
             1 us each.
ncnn         as onnxruntime, but an attention's Q, K, V and output layers stay as they are (attention.py). pnnx
             turns the original's attention into ncnn's fused MultiHeadAttention and its LayerNorms into LayerNorm
             layers; converted, the projections are Convs that no longer match, and ncnn runs the attention as
             separate MatMul, Softmax, Permute and Reshape layers. Every other FC layer converts.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    blocks: bool
    collapse_head_split: bool  # also collapse the chains into an attention product (and split a fused QKV layer)
    keep_attention: str = ""   # the reason an attention's projections stay as they are; "" converts them


TARGETS = {
    "onnxruntime": Target(blocks=False, collapse_head_split=True),
    "openvino": Target(blocks=True, collapse_head_split=False),
    "ncnn": Target(blocks=False, collapse_head_split=True,
                   keep_attention="an attention projection, left for ncnn (--target ncnn): pnnx fuses the Q, K, V "
                                  "and output layers with the attention into one MultiHeadAttention layer, which "
                                  "a Conv would break (measured 1.3x slower on a ViT)"),
}
