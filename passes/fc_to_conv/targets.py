"""The graph shape each downstream runtime runs fastest: what `--target` chooses, from measurements
(scripts/bench_models.py; the README's Performance section has the tables).

    blocks    transformer blocks stay in the image layout: a LayerNormalization over the channels runs on the
              image (normalize.py) and the residual stream joins the layout where it meets an FC layer's output
              (region.py), so a block leaves [B, C, 1, T] only at the attention's head split and at the model's
              edges
    collapse  the ways in and out merge with the model's own Reshapes and Transposes (simplify.py)

onnxruntime  collapse, no blocks. onnxruntime fuses LayerNormalization over the last axis into one kernel and runs
             every Transpose it is given; the channel-axis normalization is plain ops there, and the collapsed
             chains move the least data.
openvino     blocks, no collapse. OpenVINO's CPU plugin keeps a 1x1 Conv's data channels-last, so the ways in and
             out cancel against its own reorders (with static input shapes), and it fuses the attention
             (MatMul -> Softmax -> MatMul) into one kernel only when Q, K and V arrive through the head split's
             own Reshape -> Transpose: a collapsed chain hides the pattern. Its MVN fusion does not take a
             normalization over axis 1, but the plain ops cost about 1 us each.
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
    collapse: bool
    keep_attention: str = ""   # the reason an attention's projections stay as they are; "" converts them


TARGETS = {
    "onnxruntime": Target(blocks=False, collapse=True),
    "openvino": Target(blocks=True, collapse=False),
    "ncnn": Target(blocks=False, collapse=True,
                   keep_attention="an attention projection, left for ncnn (--target ncnn): pnnx fuses the Q, K, V "
                                  "and output layers with the attention into one MultiHeadAttention layer, which "
                                  "a Conv would break (measured 1.3x slower on a ViT)"),
}
