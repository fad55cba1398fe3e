"""LayerNormalization over the channels of an image, in plain ops: the form a transformer block's LayerNorm takes
when the block stays in the image layout [B, C, 1, T].

ONNX's LayerNormalization normalizes over the trailing axes from `axis` on; in the image the channels are axis 1,
followed by the rows, so it cannot say "axis 1 alone". With x the image and C its channels:

    mean = ReduceMean(x, axes=[1])                 (keepdims: [B, 1, 1, T])
    d    = x - mean
    var  = ReduceMean(d ^ 2, axes=[1])
    y    = d / Sqrt(var + epsilon) * scale + bias   (scale and bias re-laid [1, C, 1, 1])

which is LayerNormalization's own definition (biased variance, epsilon inside the root). OpenVINO 2026.4 does
not fuse it into one MVN (its MVNFusion takes trailing axes only; measured with Pow and with Mul for the square):
it runs two ReduceMean layers (1 us each in the profile of the GPT decoder, width 64, 128 tokens) and fuses the
element-wise rest with its neighbours.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .emit import Emitter


def layer_norm(em: Emitter, x: str, epsilon: float, scale: Optional[str], bias: Optional[str], hint: str,
               output: str) -> str:
    """Emit the channel-axis LayerNormalization of image `x` into `output`; `scale` and `bias` are [1, C, 1, 1]
    constants (or None)."""
    mean = _reduce_mean(em, x, hint + "_mean")
    d = em.node("Sub", [x, mean], hint + "_centered")
    var = _reduce_mean(em, em.node("Pow", [d, em.constant(hint + "_two", np.array(2.0, np.float32))],
                                   hint + "_squared"), hint + "_variance")
    eps = em.constant(hint + "_epsilon", np.array(epsilon, np.float32))
    std = em.node("Sqrt", [em.node("Add", [var, eps], hint + "_variance_eps")], hint + "_std")
    steps = [("Div", std, "_normalized"), ("Mul", scale, "_scaled"), ("Add", bias, "_shifted")]
    steps = [s for s in steps if s[1] is not None]
    y = d
    for i, (op, operand, suffix) in enumerate(steps):
        y = em.node(op, [y, operand], hint + suffix, output if i == len(steps) - 1 else None)
    return y


def _reduce_mean(em: Emitter, x: str, hint: str) -> str:
    if em.opset >= 18:  # axes became an input in opset 18
        return em.node("ReduceMean", [x, em.shape([1])], hint, keepdims=1)
    return em.node("ReduceMean", [x], hint, axes=[1], keepdims=1)
