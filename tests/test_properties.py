"""Property tests: hypothesis builds random FC graphs and the pass must convert what it can, with no layer
reverted, and outputs within the calibrated tolerances.

Each example is a chain of 1 to 3 FC layers (Gemm on rank 2, MatMul or MatMul+Add on ranks 2 to 4), sizes K, N
from 1 to 17, transB, alpha, beta, every bias shape, fp32 or fp16, static or dynamic leading dims, an optional
element-wise op between layers, and weights shared between layers where the shapes allow. 500 examples per run
(derandomized so that CI is repeatable), about 10 s on a 2-core machine.
"""
import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from builders import init, make_model, rand, run, vi
from passes.fc_to_conv import convert
from passes.fc_to_conv.verify.compare import TOLERANCES

SETTINGS = settings(max_examples=500, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def fc_graphs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    rank = draw(st.integers(2, 4))
    lead = draw(st.lists(st.integers(1, 4), min_size=rank - 1, max_size=rank - 1))
    dynamic = draw(st.booleans())
    k = draw(st.integers(1, 17))
    dims = [f"d{i}" if dynamic else d for i, d in enumerate(lead)] + [k]
    x_name, nodes, inits, weights = "X", [], [], {}
    layers = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)

    def const(name, shape):
        value = (rng.standard_normal(shape) / np.sqrt(max(shape[0] if shape else 1, 1))).astype(dtype)
        inits.append(init(name, value))
        return name

    for i in range(layers):
        n = draw(st.integers(1, 17))
        use_gemm = rank == 2 and draw(st.booleans())
        out = f"h{i}"
        if use_gemm:
            trans_b = draw(st.booleans())
            w_shape = (n, k) if trans_b else (k, n)
            w = weights.get(w_shape) if draw(st.booleans()) else None
            w = w or const(f"w{i}", w_shape)
            weights[w_shape] = w
            c_choice = draw(st.sampled_from([None, (), (1,), (n,), (1, n), (lead[0], 1), (lead[0], n)]))
            ins = [x_name, w] + ([const(f"c{i}", c_choice)] if c_choice is not None else [])
            if c_choice is not None and len(c_choice) == 2 and c_choice[0] != 1 and dynamic:
                dims[0] = lead[0]  # a row-varying C fixes M
            nodes.append(helper.make_node("Gemm", ins, [out], name=f"fc{i}", transB=int(trans_b),
                                          alpha=draw(st.sampled_from([1.0, 0.5, -1.5])),
                                          beta=draw(st.sampled_from([1.0, 2.0]))))
        else:
            w = weights.get((k, n)) if draw(st.booleans()) else None
            w = w or const(f"w{i}", (k, n))
            weights[(k, n)] = w
            bias = draw(st.sampled_from([None, (n,), (1,), (1, n), ()]))
            if bias is not None and len(bias) > rank:
                bias = (n,)
            if bias is None:
                nodes.append(helper.make_node("MatMul", [x_name, w], [out], name=f"fc{i}"))
            else:
                nodes.append(helper.make_node("MatMul", [x_name, w], [out + "_mm"], name=f"fc{i}"))
                nodes.append(helper.make_node("Add", [out + "_mm", const(f"b{i}", bias)], [out]))
        between = draw(st.sampled_from([None, "Relu", "Tanh", "AddConst"]))
        if between == "Relu" or between == "Tanh":
            nodes.append(helper.make_node(between, [out], [out + "_a"]))
            out += "_a"
        elif between == "AddConst":
            nodes.append(helper.make_node("Add", [out, const(f"s{i}", (n,))], [out + "_a"]))
            out += "_a"
        x_name, k = out, n
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model(nodes, [vi("X", dims, elem)], [vi(x_name, dims[:-1] + [k], elem)], inits)
    x_shape = [d if isinstance(d, int) else lead[i] for i, d in enumerate(dims)]
    return model, rand(x_shape, dtype, seed=seed), dtype


@SETTINGS
@given(fc_graphs())
def test_random_fc_graphs_convert_and_match(case):
    model, x, dtype = case
    new, report = convert(model)
    fcs = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]
    assert not report.reverted, report.text()
    assert len(report.converted) + len(report.skipped) == len(fcs)
    assert report.verified, report.text()
    assert all(s.reason for s in report.skipped)
    onnx.checker.check_model(new, full_check=True)
    # an independent comparison on the example's own input, with the calibrated tolerance
    rtol, atol = TOLERANCES["float16" if dtype == np.float16 else "float32"]
    got, ref = run(new, {"X": x})[0].astype(np.float64), run(model, {"X": x})[0].astype(np.float64)
    assert got.shape == ref.shape
    err = np.max(np.abs(got - ref)) if ref.size else 0.0
    assert err <= atol or err <= rtol * np.max(np.abs(ref))


@st.composite
def heads_graphs(draw):
    """x [B, T, C] -> MatMul(+Add) -> Reshape [.., H, C2/H] (0s for B and T) -> Transpose(any perm) -> output,
    optionally through a second Transpose: the attention shapes that simplify.py collapses."""
    heads = draw(st.sampled_from([1, 2, 4]))
    dh = draw(st.integers(1, 5))
    c, c2 = draw(st.integers(1, 9)), heads * dh
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    dynamic = draw(st.booleans())
    perm = draw(st.permutations([0, 1, 2, 3]))
    seed = draw(st.integers(0, 2**16))
    nodes = [helper.make_node("MatMul", ["X", "W"], ["m"], name="proj"),
             helper.make_node("Add", ["m", "bias"], ["k"]),
             helper.make_node("Reshape", ["k", "shape"], ["k4"]),
             helper.make_node("Transpose", ["k4"], ["Y"], perm=list(perm))]
    dims = ["b", "t"] if dynamic else [b, t]
    out = [(dims + [heads, dh])[p] for p in perm]
    inits = [init("W", rand((c, c2), seed=seed)), init("bias", rand(c2, seed=seed + 1)),
             init("shape", np.array([0, 0, heads, dh], np.int64))]
    model = make_model(nodes, [vi("X", dims + [c])], [vi("Y", out)], inits)
    return model, rand((b, t, c), seed=seed + 2)


@SETTINGS
@given(heads_graphs())
def test_attention_shaped_chains_collapse_correctly(case):
    model, x = case
    new, report = convert(model)
    assert not report.reverted and report.verified, report.text()
    got, ref = run(new, {"X": x})[0], run(model, {"X": x})[0]
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 1e-5 * max(np.max(np.abs(ref)), 1e-6)
    layout_ops = sum(n.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze") for n in new.graph.node)
    # the way in (2), then the way out merged with the split and its Transpose: at most Reshape, Transpose, Reshape
    assert layout_ops <= 5, [n.op_type for n in new.graph.node]
