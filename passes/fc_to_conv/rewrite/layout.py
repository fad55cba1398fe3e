"""How an FC layer's activation is held as an image for the Conv (entering), and given back (leaving).

A Family is one way of laying out a group of activations that share their rows: every tensor of the family is an
image [batch, channels, h, w] whose channels are the original last dim. FC layers, and the element-wise ops
between them, pass images of one family along without leaving it; a tensor leaves only where something outside
needs it in its original shape.

channels_first: the weight is on the left (W @ x, Conv1d-style), the channels already in place.
    rank 2 [K, M]       Reshape [1,K,1,-1]                         ... Reshape [N,-1]
    rank 3 [B, K, T]    Reshape [0,0,1,-1]                         ... Reshape [0,0,-1]

spatial (default): rows go on the image's width, one image per leading batch entry.
    rank 1 [K]          Reshape [1,K,1,1]                          ... Reshape [N]
    rank 2 [M, K]       Reshape [1,1,-1,K], Transpose(0,3,1,2)     ... Transpose(0,2,3,1), Reshape [-1,N]
    rank 2, A^T [K, M]  Reshape [1,K,1,-1]                         ... (as rank 2)
    rank 2, M == 1      Reshape [1,K,1,1]                          ... Reshape [1,N]
    rank 3 [B, T, K]    Reshape [0,1,-1,K], Transpose(0,3,1,2)     ... Transpose(0,2,3,1), Reshape [0,-1,N]
    rank 4 [B, H, T, K] Transpose(0,3,1,2) -> [B,K,H,T]            ... Transpose(0,2,3,1)
  onnxruntime runs a 1x1 Conv over a wide image as one matrix product. The Transposes are 4-D and next to the
  Conv (NHWC <-> NCHW), so that onnxruntime's NCHWc transformer folds them into the reorders it puts around its
  Conv kernel (channels_last), with dynamic rows too; a 3-D Transpose(0,2,1) before a Reshape stays a Transpose
  that runs (measured: README, Layout).

batch: every row is its own 1x1 image.
    any rank [..., K]   Reshape [-1,K,1,1]                         ... Reshape [..., N]
  The way back needs the leading dims: a constant when at most one is dynamic, else Shape -> Slice -> Concat.
  Fewer nodes for rank 2, but onnxruntime runs many 1x1 images about 2.55x slower than the MatMul (README).
  A classifier head converted with a full kernel produces this family too: [N, C, H, W] -> [N, N_out, 1, 1].

Reshape shapes use 0 (copy this dim) and -1 (infer), never a concrete batch or sequence size, so dynamic dims stay
dynamic.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import List, Tuple

import numpy as np

from ..graph.shapes import Dim
from .emit import Emitter


class Kind(str, Enum):
    """How a family lays its rows out. SPATIAL and BATCH are the layouts a user picks (--layout); CHANNELS_FIRST is
    the family of W @ x layers, whose channels are in place already. (A str: a kind equals, and hashes as, its value.)"""
    SPATIAL = "spatial"
    BATCH = "batch"
    CHANNELS_FIRST = "channels_first"


LAYOUTS = (Kind.SPATIAL.value, Kind.BATCH.value)


@dataclass(frozen=True)
class Family:
    kind: Kind
    lead: Tuple[Dim, ...]     # the original dims before the channel dim
    transposed: bool = False  # the entering tensor is [K, M] (Gemm transA)
    source: str = ""          # an original-shaped tensor with these leading dims (for a dynamic way back)

    @property
    def key(self) -> tuple:
        """Images of families with equal keys have equal shapes but for channels: they may meet in one op."""
        return (self.kind, self.lead)

    @property
    def channels_first(self) -> bool:
        return self.kind is Kind.CHANNELS_FIRST

    def wide(self, rows: int) -> bool:
        """Whether the family's images hold at least `rows` rows on their height and width. A dynamic dim there
        counts as many when it is not the leading dim (a sequence; the leading dim is a batch, and a batch of
        rows on the width is most often 1)."""
        rank = len(self.lead) + 1
        if self.kind is Kind.BATCH or rank == 1 or self._single_row():
            return False
        spatial = self.lead[-1:] if rank == 2 else self.lead[1:]
        if all(isinstance(d, int) for d in spatial):
            return int(np.prod(spatial)) >= rows
        return rank >= 3

    def _single_row(self) -> bool:
        return len(self.lead) == 1 and self.lead[0] == 1

    def enter(self, em: Emitter, x: str, k: int, hint: str) -> str:
        rank = len(self.lead) + 1
        if self.channels_first:   # [K, M] or [B, K, T]: the channels are in place already
            if self.transposed:
                x = em.transpose(x, [1, 0], hint + "_cols")
            return em.reshape(x, [1, k, 1, -1] if rank == 2 else [0, 0, 1, -1], hint + "_image")
        if rank == 1 or self._single_row():
            return em.reshape(x, [1, k, 1, 1], hint + "_image")
        if self.kind is Kind.BATCH:
            if self.transposed:
                x = em.transpose(x, [1, 0], hint + "_a")
            return em.reshape(x, [-1, k, 1, 1], hint + "_image")
        if rank == 2 and self.transposed:
            return em.reshape(x, [1, k, 1, -1], hint + "_image")
        if rank < 4:   # [M, K] as [1, 1, M, K], [B, T, K] as [B, 1, T, K]: rows on the width, channels last
            x = em.reshape(x, [1 if rank == 2 else 0, 1, -1, k], hint + "_rows4")
        return em.transpose(x, [0, 3, 1, 2], hint + "_image")

    def leave(self, em: Emitter, y: str, n: int, out: str, hint: str) -> None:
        rank = len(self.lead) + 1
        if self.channels_first:
            em.reshape(y, [n, -1] if rank == 2 else [0, 0, -1], hint + "_rows", out)
        elif rank == 1:
            em.reshape(y, [n], hint + "_rows", out)
        elif self._single_row():
            em.reshape(y, [1, n], hint + "_rows", out)
        elif self.kind is Kind.BATCH:
            if sum(not isinstance(d, int) for d in self.lead) <= 1:
                em.reshape(y, [d if isinstance(d, int) else -1 for d in self.lead] + [n], hint + "_rows", out)
            else:
                prefix = em.shape_prefix(self.source, len(self.lead), hint + "_lead")
                shape = em.node("Concat", [prefix, em.shape([n])], hint + "_shape", axis=0)
                em.node("Reshape", [y, shape], hint + "_rows", out)
        elif rank == 4:
            em.transpose(y, [0, 2, 3, 1], hint + "_rows", out)
        else:
            em.reshape(em.transpose(y, [0, 2, 3, 1], hint + "_rows4"), [-1, n] if rank == 2 else [0, -1, n],
                       hint + "_rows", out)


def family_for(layout: str, x: str, dims: List[Dim], transposed: bool = False,
               channels_first: bool = False) -> Family:
    """The family of an FC layer's activation with `dims` (channels last; with `channels_first`, the weight is on
    the left, W @ x, and the channels are the second-to-last dim: [K, M] or [B, K, T])."""
    if channels_first:
        return Family(Kind.CHANNELS_FIRST, tuple(dims[:-2]) + tuple(dims[-1:]), transposed, x)
    return Family(Kind(layout), tuple(dims[:-1]), transposed, x)


def image_constant(c: np.ndarray, channels: int, channels_first: bool = False):
    """A constant operand of an element-wise op, for the op's image form: a single value stays as it is (None),
    a per-channel vector becomes [1, C, 1, 1] ([..., C] channels last; [..., C, 1] channels first). Raises
    ValueError for anything that varies along the rows."""
    if c.size == 1 and c.ndim <= 4:
        return None
    if channels_first:
        if 2 <= c.ndim <= 3 and c.shape[-2:] == (channels, 1) and all(d == 1 for d in c.shape[:-2]):
            return c.reshape(1, channels, 1, 1)
        raise ValueError(f"operand of shape {list(c.shape)} is not per-channel")
    if c.ndim >= 1 and c.shape[-1] == channels and all(d == 1 for d in c.shape[:-1]) and c.ndim <= 4:
        return c.reshape(1, channels, 1, 1)
    raise ValueError(f"operand of shape {list(c.shape)} is not per-channel")
