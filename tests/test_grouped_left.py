"""A 3-D constant on the left (issue 25, case 6): hummingbird-ml's GEMM trees compute W [G, N, K] @ x [G, K, T]
(or [B, G, K, T]); as the mirrored x @ W [G, K, N] already did, it becomes one grouped Conv, here with the channels
in place (no Transpose). Compared with a float64 numpy reference: fp32 over K = 6 terms, 1e-5 relative (measured
under 1e-6)."""
import numpy as np
import pytest
from onnx import helper

from builders import init, make_model, run, vi
from passes.fc_to_conv import convert

G, N, K, T = 3, 5, 6, 7
rng = np.random.default_rng(11)
W = rng.standard_normal((G, N, K)).astype(np.float32)


@pytest.mark.parametrize("x_shape", [[G, K, T], [2, G, K, "t"]])
def test_a_3d_weight_on_the_left_is_a_grouped_conv(x_shape):
    out_shape = x_shape[:-3] + [G, N, x_shape[-1]]
    m = make_model([helper.make_node("MatMul", ["W", "x"], ["y"], name="trees")], [vi("x", x_shape)],
                   [vi("y", out_shape)], [init("W", W)])
    out, report = convert(m)
    assert report.verified and len(report.converted) == 1, report.text()
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert [a.i for a in conv.attribute if a.name == "group"] == [G]
    assert "Transpose" not in {n.op_type for n in out.graph.node}
    x = rng.standard_normal([d if isinstance(d, int) else 4 for d in x_shape]).astype(np.float32)
    np.testing.assert_allclose(run(out, {"x": x})[0], W.astype(np.float64) @ x, rtol=1e-5, atol=1e-5)


def test_a_3d_weight_on_the_left_with_other_groups_says_why():
    m = make_model([helper.make_node("MatMul", ["W", "x"], ["y"], name="trees")], [vi("x", [G + 1, K, T])],
                   [vi("y", [G + 1, N, T])], [init("W", W)])
    _, report = convert(m)
    assert "a 3-D W on the left is a grouped layer only on [G, K, T] or [B, G, K, T]" in report.skipped[0].reason
