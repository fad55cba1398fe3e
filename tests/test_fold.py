"""Weight folding (fold.py) against a float64 numpy reference of Gemm and of a 1x1 / full-kernel convolution."""
import itertools

import numpy as np
import pytest

from passes.fc_to_conv.rules import fold

M, K, N = 5, 7, 3


def gemm_ref(a, b, c, trans_a, trans_b, alpha, beta):
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    return y if c is None else y + beta * c.astype(np.float64)


def conv1x1_ref(x_rows, w, bias):
    """A 1x1 convolution written out: x_rows [M, K] laid out as M pixels of K channels."""
    out = np.einsum("nk,mk->mn", w[:, :, 0, 0].astype(np.float64), x_rows.astype(np.float64))
    return out if bias is None else out + bias


C_SHAPES = [None, (), (1,), (N,), (1, N), (1, 1), (M, 1), (M, N)]


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape",
                         list(itertools.product([0, 1], [0, 1], [1.0, 0.5, -2.0], [1.0, 0.25], C_SHAPES)))
def test_gemm_folding_matches_numpy(trans_a, trans_b, alpha, beta, c_shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    c = None if c_shape is None else rng.standard_normal(c_shape).astype(np.float32)
    ref = gemm_ref(a, b, c, trans_a, trans_b, alpha, beta)

    w = fold.conv_weight(b, bool(trans_b), alpha)
    assert w.shape == (N, K, 1, 1) and w.dtype == np.float32
    rows = a.T if trans_a else a
    bias = None
    post = 0.0
    if c is not None:
        if fold.per_channel_bias(c, N, 2):
            bias = fold.conv_bias(c, N, beta)
            assert bias.shape == (N,)
        else:
            assert c_shape in [(M, 1), (M, N)]
            post = fold.post_add_term(c, beta).astype(np.float64)
    got = conv1x1_ref(rows, w, bias) + post
    # float32 weights scaled once: the only error is the fp32 rounding of alpha*B and beta*C (~6e-8 relative)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_alpha_one_copies_weight_bit_for_bit():
    b = np.random.default_rng(1).standard_normal((K, N)).astype(np.float16)
    w = fold.conv_weight(b)
    assert w.dtype == np.float16
    assert np.array_equal(w[:, :, 0, 0], b.T)


@pytest.mark.parametrize("shape,out_rank,expected", [
    ((), 2, True), ((1,), 2, True), ((N,), 2, True), ((1, N), 2, True), ((1, 1, N), 3, True),
    ((1, 1, N), 2, False),   # would add a leading dim to a rank-2 output
    ((M, N), 2, False), ((M, 1), 2, False), ((2,), 2, False), ((N, 1), 2, False)])
def test_per_channel_bias(shape, out_rank, expected):
    assert fold.per_channel_bias(np.zeros(shape), N, out_rank) is expected


def test_full_kernel_weight_is_the_chapter_example():
    """Chapter 12: 4 inputs as a 2x2 image, a 2x2 kernel per output; the conv is the FC's dot product."""
    w_fc = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])  # [outputs, inputs] as in the chapter
    x = np.array([0.5, -1.0, 2.0, 0.25])
    b = np.array([0.1, -0.2])
    k = fold.full_kernel_weight(w_fc, (1, 2, 2), trans_b=True)
    assert k.shape == (2, 1, 2, 2)
    np.testing.assert_array_equal(k[0, 0], [[1.0, 2.0], [3.0, 4.0]])  # W_1 = [[w11, w12], [w13, w14]]
    image = x.reshape(1, 2, 2)
    conv = np.array([(k[o] * image).sum() + b[o] for o in range(2)])  # kernel == input: one position
    np.testing.assert_allclose(conv, w_fc @ x + b, rtol=0, atol=1e-12)


def test_non_2d_weight_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        fold.conv_weight(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("k,n", [(1, 1), (15, 7), (16, 3), (17, 33), (100, 64), (770, 129)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_transposing_copy_in_bands_is_exact(k, n, dtype):
    """conv_weight copies B^T in bands of 16 rows: every K, band-aligned or not, gives B^T bit for bit."""
    b = np.random.default_rng(k * n).standard_normal((k, n)).astype(dtype)
    w = fold.conv_weight(b)
    assert w.shape == (n, k, 1, 1) and w.dtype == dtype and w.flags.c_contiguous
    assert np.array_equal(w[:, :, 0, 0], b.T)
