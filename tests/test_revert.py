"""Verified or reverted: deliberate bugs injected into the rewrite are caught, and exactly the layers they break
are reverted; the written model then verifies. --strict turns any revert into a failure."""
import numpy as np
import onnx
import pytest
from onnx import helper

from builders import init, make_model, rand, run, vi
from passes.fc_to_conv import Options, convert, convert_file
from passes.fc_to_conv.rules import fold
from passes.fc_to_conv.rewrite import layout
from test_rewrite import assert_close

M = K = N = 6


def three_layers():
    """L1: Gemm transB=1 + bias [N]; Relu and a Mul by a per-channel constant; L2: Gemm alpha=0.5 + C [M, 1]
    (stays an Add); L3: MatMul + Add. Square sizes, so that a wrong transpose or bias still runs."""
    nodes = [helper.make_node("Gemm", ["X", "w1", "b1"], ["h1"], name="L1", transB=1),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Mul", ["r1", "scale"], ["a1"]),
             helper.make_node("Gemm", ["a1", "w2", "c2"], ["h2"], name="L2", alpha=0.5),
             helper.make_node("MatMul", ["h2", "w3"], ["m3"], name="L3"),
             helper.make_node("Add", ["m3", "b3"], ["Y"], name="L3_bias")]
    inits = [init("w1", rand((N, K), seed=1)), init("b1", rand(N, seed=2)), init("w2", rand((K, N), seed=3)),
             init("c2", rand((M, 1), seed=4)), init("w3", rand((K, N), seed=5)), init("b3", rand(N, seed=6)),
             init("scale", rand(N, seed=7))]
    return make_model(nodes, [vi("X", [M, K])], [vi("Y", [M, N])], inits)


def _bug_transpose(mp):
    real = fold.conv_weight
    mp.setattr(fold, "conv_weight", lambda b, t=False, a=1.0: real(b, True, a) if not t else real(b, t, a))


def _bug_bias(mp):
    real = fold.conv_bias
    mp.setattr(fold, "conv_bias", lambda c, n, beta=1.0, dtype=None: 0 * real(c, n, beta, dtype))


def _bug_alpha(mp):
    real = fold.conv_weight
    mp.setattr(fold, "conv_weight", lambda b, t=False, a=1.0: real(b, t, 1.0))


def _bug_reshape(mp):
    """The way out of a rank-2 spatial image reshapes [1, N, 1, M] straight to [M, N], dropping the Transpose."""
    real = layout.Family.leave

    def leave(self, em, y, n, out, hint):
        if self.kind == "spatial" and len(self.lead) == 1 and self.lead[0] != 1:
            return em.reshape(y, [-1, n], hint + "_rows", out)
        return real(self, em, y, n, out, hint)
    mp.setattr(layout.Family, "leave", leave)


def _bug_row_bias(mp):
    """A [M, 1] Gemm bias taken for a per-channel [N] one (M == N, so it still runs)."""
    mp.setattr(fold, "per_channel_bias", lambda c, n, r: c.size in (1, n) and c.ndim <= r)
    mp.setattr(fold, "conv_bias", lambda c, n, beta=1.0, dtype=None:
               np.broadcast_to((c.reshape(-1) * beta).astype(dtype or c.dtype), (n,)).copy())


def _bug_moved_constant(mp):
    """The per-channel constant of an op moved between layers re-laid in reverse channel order."""
    real = layout.image_constant
    mp.setattr("passes.fc_to_conv.rewrite.writer.image_constant",
               lambda c, ch, cf=False: None if real(c, ch, cf) is None else real(c[..., ::-1].copy(), ch, cf))


@pytest.mark.parametrize("bug,inject,expected", [
    ("transpose dropped", _bug_transpose, {"L2", "L3"}),
    ("bias dropped", _bug_bias, {"L1", "L3"}),
    ("alpha ignored", _bug_alpha, {"L2"}),
    ("wrong Reshape", _bug_reshape, {"L1", "L2", "L3"}),  # every rank-2 way out is wrong, L1 alone too
    ("[M, 1] bias treated as [N]", _bug_row_bias, {"L2"}),
])
def test_injected_bug_is_caught_and_reverted(bug, inject, expected, monkeypatch, tmp_path):
    m = three_layers()
    inject(monkeypatch)
    new, report = convert(m)
    assert report.verified, report.text()
    assert {r.name for r in report.reverted} == expected, report.text()
    assert {c.name for c in report.converted} == {"L1", "L2", "L3"} - expected
    assert all(r.reason.startswith("wrong on its own: output '") or
               r.reason.startswith("wrong on its own: the rewritten model does not run") for r in report.reverted)
    x = rand((M, K), seed=9)
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])
    for name in expected:  # a reverted layer is the original node, untouched
        assert any(n.name == name for n in new.graph.node)

    src = tmp_path / "in.onnx"
    onnx.save(m, str(src))
    strict = convert_file(str(src), str(tmp_path / "strict.onnx"), Options(strict=True))
    assert not strict.written and not (tmp_path / "strict.onnx").exists()
    assert "REVERTED" in strict.text() and "FAILED (--strict)" in strict.text()


def test_bug_seen_only_in_the_whole_model_is_found_by_bisection(monkeypatch):
    """Each layer is right on its own; the Mul moved between L1 and L2 is wrong. Only the whole model shows it,
    and leaving out one of the two layers (the first that helps: L1) is enough."""
    m = three_layers()
    _bug_moved_constant(monkeypatch)
    new, report = convert(m)
    assert report.verified, report.text()
    assert [r.name for r in report.reverted] == ["L1"], report.text()
    assert report.reverted[0].reason.startswith("the rewrites fail only together: output 'Y'")
    assert {c.name for c in report.converted} == {"L2", "L3"}
    x = rand((M, K), seed=9)
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_nan_in_both_models_is_reported_not_failed():
    """log of a negative FC output is NaN in both models: counted, not a mismatch, and nothing is reverted."""
    nodes = [helper.make_node("MatMul", ["X", "W"], ["h"], name="fc"), helper.make_node("Log", ["h"], ["Y"])]
    m = make_model(nodes, [vi("X", ["n", 4])], [vi("Y", ["n", 3])], [init("W", rand((4, 3)))])
    _, report = convert(m)
    assert report.verified and not report.reverted
    out = report.verification.outputs[0]
    assert out.nonfinite > 0 and f"{out.nonfinite} NaN/Inf equal in both" in report.text()


def test_revert_on_a_streamed_external_data_model(monkeypatch, tmp_path):
    """The same machinery on a file with external data, which is converted as a stream and re-read per attempt."""
    m = three_layers()
    src = tmp_path / "in.onnx"
    onnx.save_model(onnx.ModelProto.FromString(m.SerializeToString()), str(src), save_as_external_data=True,
                    location="in.data", size_threshold=0)
    _bug_alpha(monkeypatch)
    report = convert_file(str(src), str(tmp_path / "out.onnx"))
    assert report.written and report.verified
    assert [r.name for r in report.reverted] == ["L2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.data", "in.onnx", "out.onnx", "out.onnx.data"]
    x = rand((M, K), seed=9)
    assert_close(run(onnx.load(str(tmp_path / "out.onnx")), {"X": x})[0], run(m, {"X": x})[0])


def _deep_model(layers=8, alpha_at=5):
    """`layers` FC layers in a chain, square, all MatMul but one Gemm with alpha = 0.5."""
    nodes, inits, x = [], [], "X"
    for i in range(layers):
        inits.append(init(f"w{i}", (rand((K, N), seed=20 + i) / np.sqrt(K)).astype(np.float32)))
        if i == alpha_at:
            nodes.append(helper.make_node("Gemm", [x, f"w{i}"], [f"h{i}"], name=f"L{i}", alpha=0.5))
        else:
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"L{i}"))
        x = f"h{i}"
    return make_model(nodes, [vi("X", [M, K])], [vi(x, [M, N])], inits)


@pytest.mark.parametrize("bad", [0, 5, 7])   # the first, a middle and the last layer
def test_a_layer_right_on_its_own_but_wrong_in_the_model_is_found_by_bisection(bad, monkeypatch):
    """The isolated check is made blind (it passes every layer) and alpha is ignored: only the whole model shows
    the bug, and bisection over the 8 layers must find exactly the bad layer, in about 2 log2(8) whole-model runs,
    wherever it stands (a bisection that never tries the last key left it to the 'fail only together' fallback)."""
    from passes.fc_to_conv.verify import revert
    _bug_alpha(monkeypatch)
    from passes.fc_to_conv.verify import policy
    for module in (revert, policy):   # every check of a layer on its own is blind
        monkeypatch.setattr(module, "check_layer", lambda *a, **k: "")
    attempts = []
    real = revert.revert_bad_layers

    def counting(attempt, *rest):
        return real(lambda exclude: attempts.append(dict(exclude)) or attempt(exclude), *rest)
    monkeypatch.setattr("passes.fc_to_conv.verify.policy.revert_bad_layers", counting)
    m = _deep_model(alpha_at=bad)
    new, report = convert(m)
    assert report.verified, report.text()
    assert [r.name for r in report.reverted] == [f"L{bad}"], report.text()
    assert report.reverted[0].reason.startswith("wrong in the whole model: output 'h7'")
    assert len(report.converted) == 7
    assert len(attempts) <= 2 * 3 + 2, attempts   # bisection: 2 per level of 3, plus the first and last attempts
    x = rand((M, K), seed=9)
    assert_close(run(new, {"X": x})[0], run(m, {"X": x})[0])


def test_the_revert_loop_stops_when_a_round_excludes_nothing_new():
    """Exclusions that no longer take effect (here: an attempt that ignores them) once made the loop run until
    killed. It must end, with the failing verdict, after a round that finds nothing new."""
    from types import SimpleNamespace
    from passes.fc_to_conv.verify.revert import Outcome, revert_bad_layers
    from passes.fc_to_conv.verify.compare import OutputCheck
    from passes.fc_to_conv.verify.verdict import Verification

    calls = []

    def attempt(exclude):
        calls.append(exclude)
        assert len(calls) < 100, "the revert loop does not end"
        result = SimpleNamespace(converted=[SimpleNamespace(key="a"), SimpleNamespace(key="b")])
        return Outcome("model", result, {}, None)

    def compare(target, rtol, atol):
        return Verification(rtol, atol, 1, [OutputCheck("Y", 1.0, 1.0, 0.0, passed=False)])
    reference = SimpleNamespace(compare=compare)
    outcome, verdict = revert_bad_layers(attempt, {}, lambda layer: layer, reference, 1e-5, 1e-6, 0)
    assert not verdict.numerics_passed and outcome.target == "model"
    assert len(calls) < 20


def _hidden_layer_model():
    """fc's output is multiplied by zeros before it reaches Y: the whole model cannot see whether fc is right."""
    nodes = [helper.make_node("MatMul", ["X", "w"], ["h"], name="fc"),
             helper.make_node("Mul", ["h", "zeros"], ["z"]), helper.make_node("Add", ["z", "X"], ["Y"])]
    return make_model(nodes, [vi("X", ["B", K])], [vi("Y", ["B", K])],
                      [init("w", rand((K, K), seed=11)), init("zeros", np.zeros(K, np.float32))])


def test_a_wrong_rewrite_the_model_cannot_see_is_caught_on_its_own(monkeypatch):
    """Every converted layer is also checked cut out, on random activations of its input shape, whether or not the
    whole model passed: a negated weight behind a multiplication by zero is reverted 'wrong on its own'."""
    real = fold.conv_weight
    monkeypatch.setattr(fold, "conv_weight", lambda *a, **k: -real(*a, **k))
    _, report = convert(_hidden_layer_model())
    assert report.verified, report.text()
    assert [r.name for r in report.reverted] == ["fc"] and report.reverted[0].reason.startswith("wrong on its own")


def test_the_report_shows_the_check_of_each_layer_on_its_own():
    _, report = convert(three_layers())
    assert report.verification.layers_alone == {"L1": "", "L2": "", "L3": ""}
    assert "  each converted layer on its own (random activations of its input shape): 3 of 3 PASSED" \
        in report.text().splitlines()


def test_over_the_weight_limit_layers_are_checked_on_their_own_only_after_a_failure(monkeypatch):
    from passes.fc_to_conv.verify import policy
    monkeypatch.setattr(policy, "LAYER_CHECK_MAX_BYTES", 0)
    _, report = convert(_hidden_layer_model())
    assert report.verification.layers_alone is None
    assert "  each converted layer on its own: not run (over 1 GB of weights: the whole model only)" \
        in report.text().splitlines()


@pytest.mark.parametrize("path", ["hf_gpt2.onnx", "real/ch_ppocr_mobile_v2.0_cls_infer.onnx", "wrapped_gemms.onnx",
                                  "quantized/mlp_qoperator.onnx"])
def test_layers_whose_shapes_are_computed_elsewhere_are_checked_on_their_own(path):
    """A wrapped Gemm whose Reshape shape is shared with other nodes (GPT-2), a flatten to a shape computed at run
    time (PaddleOCR), a QOperator activation whose K inference left as a symbol: cut out, each computes its shapes
    from its own input and runs (they were 'not checked')."""
    import os
    m = onnx.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", path))
    _, report = convert(m)
    alone = report.verification.layers_alone
    assert alone and not any(alone.values()), report.text()
    assert len(alone) == len(report.converted)
