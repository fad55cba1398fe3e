"""How the rows of an FC layer's activation are laid out as an image for the 1x1 Conv, and back.

An FC layer's activation is [..., K] (or [K, M] for Gemm with transA). The Conv wants [batch, K, h, w]. Two layouts:

spatial (default): rows go on the image's width, one image per leading batch entry.
    rank 1 [K]          Reshape [1,K,1,1]                          ... Reshape [N]
    rank 2 [M, K]       Transpose -> [K,M], Reshape [1,K,1,-1]     ... Reshape [N,-1], Transpose -> [M,N]
    rank 2, A^T [K, M]  Reshape [1,K,1,-1]                         ... Reshape [N,-1], Transpose -> [M,N]
    rank 2, M == 1      Reshape [1,K,1,1]                          ... Reshape [1,N]
    rank 3 [B, T, K]    Transpose(0,2,1), Reshape [0,0,1,-1]       ... Reshape [0,0,-1], Transpose(0,2,1)
    rank 4 [B, H, T, K] Transpose(0,3,1,2) -> [B,K,H,T]            ... Transpose(0,2,3,1)
  onnxruntime runs a 1x1 Conv over a wide image as one matrix product.

batch: every row is its own 1x1 image.
    any rank [..., K]   Reshape [-1,K,1,1]                         ... Reshape [..., N]
  The way back needs the leading dims: a constant when at most one is dynamic, else Shape -> Slice -> Concat.
  Fewer nodes for rank 2, but onnxruntime runs many 1x1 images about 2x slower than the MatMul (see README).

Reshape shapes use 0 (copy this dim) and -1 (infer), never a concrete batch or sequence size, so dynamic dims stay
dynamic.
"""
from __future__ import annotations

from typing import Callable, Tuple

from .check import Plan
from .emit import Emitter

LAYOUTS = ("spatial", "batch")

Finish = Callable[[str, str], None]  # (conv output, final output name) -> emits the nodes back


def to_image(em: Emitter, plan: Plan, layout: str) -> Tuple[str, Finish]:
    x, dims, k, n, hint = plan.cand.x, plan.x_dims, plan.k, plan.n, plan.output
    transposed = plan.cand.trans_a
    rank = len(dims)

    if rank == 1:
        return em.reshape(x, [1, k, 1, 1], hint + "_image"), \
            lambda y, out: em.reshape(y, [n], hint + "_rows", out)

    if rank == 2 and dims[0] == 1:
        return em.reshape(x, [1, k, 1, 1], hint + "_image"), \
            lambda y, out: em.reshape(y, [1, n], hint + "_rows", out)

    if layout == "batch":
        if transposed:
            x = em.transpose(x, [1, 0], hint + "_a")
        image = em.reshape(x, [-1, k, 1, 1], hint + "_image")

        def back(y: str, out: str) -> None:
            lead = dims[:-1]
            if sum(not isinstance(d, int) for d in lead) <= 1:
                em.reshape(y, [d if isinstance(d, int) else -1 for d in lead] + [n], hint + "_rows", out)
            else:
                prefix = em.shape_prefix(x, len(lead), hint + "_lead")
                shape = em.node("Concat", [prefix, em.shape([n])], hint + "_shape", axis=0)
                em.node("Reshape", [y, shape], hint + "_rows", out)
        return image, back

    if rank == 2:
        if not transposed:
            x = em.transpose(x, [1, 0], hint + "_cols")
        image = em.reshape(x, [1, k, 1, -1], hint + "_image")

        def back(y: str, out: str) -> None:
            em.transpose(em.reshape(y, [n, -1], hint + "_cols_out"), [1, 0], hint + "_rows", out)
        return image, back

    if rank == 3:
        image = em.reshape(em.transpose(x, [0, 2, 1], hint + "_chw"), [0, 0, 1, -1], hint + "_image")

        def back(y: str, out: str) -> None:
            em.transpose(em.reshape(y, [0, 0, -1], hint + "_chw_out"), [0, 2, 1], hint + "_rows", out)
        return image, back

    image = em.transpose(x, [0, 3, 1, 2], hint + "_image")
    return image, lambda y, out: em.transpose(y, [0, 2, 3, 1], hint + "_rows", out)
