"""Weight folding for FC -> Conv (1x1, or full-kernel on a classifier head's map), in pure numpy.

A fully connected layer, written as ONNX computes it:

    Gemm:    Y = alpha * A' @ B' + beta * C       A' = A^T if transA else A      [M, K]
                                                  B' = B^T if transB else B      [K, N]
    MatMul:  Y = X @ B (+ c)                      B [K, N], X [..., K]

A 1x1 convolution over an input with K channels computes at every pixel p

    Z[n, p] = sum_k Wc[n, k, 0, 0] * X[k, p] + bc[n]

so laying the rows of A (or of X) out as pixels gives Z[:, p] = Y[p, :] exactly when

    Wc[n, k, 0, 0] = alpha * B'[k, n]         i.e.  Wc = (alpha * B'^T)[:, :, None, None]     [N, K, 1, 1]
    bc[n]          = beta * C[n]              (C varies along N only: shape (), [1], [N], [1, N], [1, 1])

A C that varies along the rows ([M, 1], [M, N]) is not a per-channel bias; it stays an Add after the Conv with
C_post = beta * C.

Scaling by alpha or beta is done in float64 and cast back once, so a weight with alpha == 1 is copied bit for bit.
"""
from __future__ import annotations

import numpy as np


_BAND = 16   # rows of the source per block of a transposing copy


def _contiguous(values: np.ndarray, dtype) -> np.ndarray:
    """np.ascontiguousarray(values, dtype). A transposed 2-D weight (B^T) is copied in bands of 16 source rows:
    each band is read once, in order, and written as 16 columns; on a 3072 x 768 fp32 weight that measured 1.4 ms
    against 3.7 ms for numpy's element-by-element transposing copy."""
    if values.ndim != 2 or values.flags.c_contiguous or not values.flags.f_contiguous or values.dtype != dtype:
        return np.ascontiguousarray(values, dtype=dtype)
    out = np.empty(values.shape, dtype)
    source = values.T  # C-contiguous
    for i in range(0, source.shape[0], _BAND):
        out[:, i:i + _BAND] = source[i:i + _BAND].T
    return out


def _scaled(values: np.ndarray, scale: float, dtype) -> np.ndarray:
    if scale == 1.0:
        return _contiguous(values, dtype)
    return np.ascontiguousarray(values.astype(np.float64) * scale, dtype=dtype)


def conv_weight(b: np.ndarray, trans_b: bool = False, alpha: float = 1.0) -> np.ndarray:
    """[K, N] weight (or [N, K] with trans_b) -> Conv weight [N, K, 1, 1] = (alpha * B'^T)[:, :, None, None]."""
    if b.ndim != 2:
        raise ValueError(f"FC weight must be 2-D, got shape {list(b.shape)}")
    b_t = b if trans_b else b.T  # [N, K]
    return _scaled(b_t, alpha, b.dtype)[:, :, None, None]


def full_kernel_weight(b: np.ndarray, chw: tuple, trans_b: bool = False, alpha: float = 1.0) -> np.ndarray:
    """Weight of an FC layer that reads a flattened C x H x W map -> Conv weight [N, C, H, W].

    Flatten lays a [C, H, W] map out as k = (c * H + h) * W + w, so B'[k, n] = Wc[n, c, h, w].
    """
    c, h, w = chw
    return conv_weight(b, trans_b, alpha).reshape(-1, c, h, w)


def quantized_conv_axis(axis: int, trans_b: bool) -> int:
    """The axis of a DequantizeLinear on the Conv weight [N, K, 1, 1], from its axis on the FC weight.

    A quantized FC weight is W = DequantizeLinear(Q, s, z, axis) = (Q - z) * s along `axis`. Transposing and
    adding unit dims commutes with it: (W'^T)[:, :, None, None] = DequantizeLinear(Q'^T[:, :, None, None], s, z,
    axis'), where the N dim is Conv axis 0 and the K dim Conv axis 1. alpha * W = DequantizeLinear(Q, alpha * s, z).
    """
    dim = axis % 2                   # 0 or 1 on the 2-D weight
    n_dim = 0 if trans_b else 1      # where N sits: [N, K] with transB, else [K, N]
    return 0 if dim == n_dim else 1


def grouped_conv_weight(w: np.ndarray) -> np.ndarray:
    """A weight per group [G, K, N] -> grouped Conv weight [G*N, K, 1, 1]: W'[g*N + n, k] = W[g, k, n]."""
    g, k, n = w.shape
    return np.ascontiguousarray(w.transpose(0, 2, 1)).reshape(g * n, k, 1, 1)


def grouped_left_weight(w: np.ndarray) -> np.ndarray:
    """A weight per group on the left, W [G, N, K] @ x [G, K, T] -> grouped Conv weight [G*N, K, 1, 1]:
    W'[g*N + n, k] = W[g, n, k], a reshape."""
    g, n, k = w.shape
    return np.ascontiguousarray(w).reshape(g * n, k, 1, 1)


def per_channel_bias(c: np.ndarray, n: int, out_rank: int) -> bool:
    """True when adding `c` to an output of shape [..., N] (rank out_rank) adds c[n] to column n only and
    leaves the output's shape unchanged: every dim of c but the last is 1, the last is 1 or N, and c has
    no more dims than the output."""
    shape = c.shape
    if len(shape) > out_rank:
        return False
    if len(shape) == 0:
        return True
    return all(d == 1 for d in shape[:-1]) and shape[-1] in (1, n)


def conv_bias(c: np.ndarray, n: int, beta: float = 1.0, dtype=None) -> np.ndarray:
    """A per-channel bias (see per_channel_bias) -> Conv bias [N] = beta * C broadcast along N."""
    flat = c.reshape(c.shape[-1:] if c.ndim else (1,))
    return np.ascontiguousarray(np.broadcast_to(_scaled(flat, beta, dtype or c.dtype), (n,)))


def post_add_term(c: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """A bias that varies along the rows stays an Add after the Conv: C_post = beta * C."""
    return _scaled(c, beta, c.dtype)
