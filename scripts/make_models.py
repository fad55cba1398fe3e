"""Build the hand-made example models in models/ deterministically (no torch needed).

    python scripts/make_models.py

- chapter_fc.onnx: the chapter's own layer (shared/seed/): 4 inputs, 2 outputs, Gemm with bias; batch dynamic.
- mlp.onnx: a 3-layer MLP, Gemm+Relu / MatMul+Add+Relu / Gemm, batch dynamic, with metadata and doc strings.
- transformer_block.onnx: a pre-LayerNorm transformer block on [batch, seq, 64] activations (dynamic batch and
  seq): Q/K/V/output projections and a 2-layer GELU MLP as MatMul+Add, attention as MatMul between activations
  (which is not an FC layer and must stay).
- computed_weights.onnx: weights that an older exporter computes: ConstantOfShape * Transpose(Constant), a
  Cast from fp16, an Identity of an initializer (opset 11).
- ir3_mlp.onnx: an MLP at IR version 3, opset 8: every initializer also listed as a graph input, Gemm with
  transB=1 and a Reshape of the input.
- if_loop.onnx: FC layers inside an If (weights from the outer scope and from the branch itself) and inside a
  Loop body (y <- Relu(y @ W + b), 3 iterations).
- audio_block.onnx: a Conv1d-style block on [batch, 32, T], weights on the left: W @ x + b ([N, 1]), Relu.
- grouped.onnx: x [batch, 4, seq, 16] @ W [4, 16, 8]: a constant weight per group.
- wrapped_gemms.onnx: three Linear layers on [batch, seq, 32] as Reshape -> Gemm -> Reshape(Concat(Shape...)).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")
F = TensorProto.FLOAT


def _model(graph, opset=17, ir=8, **meta):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fc2conv-scripts",
                          producer_version="1", doc_string=meta.pop("doc", ""))
    m.ir_version = ir
    m.model_version = 1
    helper.set_model_props(m, meta)
    onnx.checker.check_model(m, full_check=True)
    return m


def chapter_fc():
    w = np.array([[0.1, -0.2, 0.3, 0.4], [0.5, 0.6, -0.7, 0.8]], dtype=np.float32)  # w[i, j]: output i, input j
    b = np.array([0.01, -0.02], dtype=np.float32)
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], "chapter_fc",
        [helper.make_tensor_value_info("x", F, ["batch", 4])], [helper.make_tensor_value_info("y", F, ["batch", 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return _model(g, doc="Chapter 12: a fully connected layer with 4 inputs and 2 outputs", source="chapter 12")


def mlp():
    rng = np.random.default_rng(1)
    def p(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (p(128, 32), "fc1.weight"), (p(128), "fc1.bias"), (p(128, 64), "fc2.weight"), (p(64), "fc2.bias"),
        (p(10, 64), "fc3.weight"), (p(10), "fc3.bias")]]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1,
                         doc_string="first layer"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("MatMul", ["a1", "fc2.weight"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "fc2.bias"], ["h2"], name="fc2_bias"),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "fc3.weight", "fc3.bias"], ["logits"], name="fc3", transB=1),
    ]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", F, ["batch", 32])],
                          [helper.make_tensor_value_info("logits", F, ["batch", 10])], inits, doc_string="a small MLP")
    g.value_info.append(helper.make_tensor_value_info("a1", F, ["batch", 128]))
    return _model(g, doc="3-layer MLP, 32 -> 128 -> 64 -> 10", author="fc2conv", license="Apache-2.0")


def transformer_block(d=64, heads=4, ff=128):
    rng = np.random.default_rng(2)
    inits = []
    def w(name, *shape):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32),
                                             name))
        return name
    def c(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name
    nodes = []
    def n(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], name=out, **kw))
        return out
    dh = d // heads
    h = n("LayerNormalization", ["x", c("ln1.g", np.ones(d)), c("ln1.b", np.zeros(d))], "ln1", axis=-1)
    q = n("Add", [n("MatMul", [h, w("q.w", d, d)], "q_mm"), w("q.b", d)], "q")
    k = n("Add", [n("MatMul", [h, w("k.w", d, d)], "k_mm"), w("k.b", d)], "k")
    v = n("Add", [n("MatMul", [h, w("v.w", d, d)], "v_mm"), w("v.b", d)], "v")
    split = c("heads_shape", [0, 0, heads, dh], np.int64)
    qh = n("Transpose", [n("Reshape", [q, split], "q_split")], "qh", perm=[0, 2, 1, 3])
    kh = n("Transpose", [n("Reshape", [k, split], "k_split")], "kh", perm=[0, 2, 3, 1])
    vh = n("Transpose", [n("Reshape", [v, split], "v_split")], "vh", perm=[0, 2, 1, 3])
    scores = n("Mul", [n("MatMul", [qh, kh], "qk"), c("scale", 1 / np.sqrt(dh))], "scores")
    att = n("MatMul", [n("Softmax", [scores], "probs", axis=-1), vh], "att")
    merged = n("Reshape", [n("Transpose", [att], "att_t", perm=[0, 2, 1, 3]), c("merge_shape", [0, 0, d], np.int64)],
               "merged")
    o = n("Add", [n("MatMul", [merged, w("o.w", d, d)], "o_mm"), w("o.b", d)], "o")
    r1 = n("Add", ["x", o], "res1")
    h2 = n("LayerNormalization", [r1, c("ln2.g", np.ones(d)), c("ln2.b", np.zeros(d))], "ln2", axis=-1)
    f1 = n("Add", [n("MatMul", [h2, w("ff1.w", d, ff)], "ff1_mm"), w("ff1.b", ff)], "ff1")
    g1 = n("Mul", [f1, n("Sigmoid", [n("Mul", [f1, c("gelu_k", 1.702)], "ff1_k")], "ff1_sig")], "gelu")
    f2 = n("Add", [n("MatMul", [g1, w("ff2.w", ff, d)], "ff2_mm"), w("ff2.b", d)], "ff2")
    n("Add", [r1, f2], "y")
    g = helper.make_graph(nodes, "transformer_block", [helper.make_tensor_value_info("x", F, ["batch", "seq", d])],
                          [helper.make_tensor_value_info("y", F, ["batch", "seq", d])], inits)
    return _model(g, doc="pre-LN transformer block, d=64, 4 heads, MLP 128")


def computed_weights():
    rng = np.random.default_rng(3)
    f16 = (rng.standard_normal((16, 8)) / 4).astype(np.float16)
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([8, 16], np.int64))),
        helper.make_node("ConstantOfShape", ["shape"], ["quarter"],
                         value=helper.make_tensor("v", F, [1], [0.25])),
        helper.make_node("Constant", [], ["w1_t"],
                         value=numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32))),
        helper.make_node("Transpose", ["w1_t"], ["w1_kn"], perm=[1, 0]),
        helper.make_node("Mul", ["w1_kn", "quarter"], ["w1"]),
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Cast", ["w2_f16"], ["w2"], to=F),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="fc2"),
        helper.make_node("Identity", ["w3_src"], ["w3"]),
        helper.make_node("Gemm", ["h2", "w3"], ["y"], name="fc3"),
    ]
    inits = [numpy_helper.from_array(f16, "w2_f16"),
             numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w3_src")]
    g = helper.make_graph(nodes, "computed_weights", [helper.make_tensor_value_info("x", F, ["batch", 8])],
                          [helper.make_tensor_value_info("y", F, ["batch", 4])], inits)
    return _model(g, opset=11, ir=6, doc="weights computed by ConstantOfShape, Transpose, Mul, Cast, Identity")


def ir3_mlp():
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (np.array([-1, 12], np.int64), "flat"),
        ((rng.standard_normal((16, 12)) / 3).astype(np.float32), "fc1_w"), (rng.standard_normal(16).astype(np.float32), "fc1_b"),
        ((rng.standard_normal((16, 5)) / 4).astype(np.float32), "fc2_w"), (rng.standard_normal(5).astype(np.float32), "fc2_b")]]
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["x2"]),
             helper.make_node("Gemm", ["x2", "fc1_w", "fc1_b"], ["h"], name="fc1", transB=1),
             helper.make_node("Sigmoid", ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "fc2_w"], ["m"], name="fc2"),
             helper.make_node("Add", ["m", "fc2_b"], ["y"], name="fc2_add")]
    inputs = [helper.make_tensor_value_info("x", F, [2, 3, 4])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in inits]
    g = helper.make_graph(nodes, "ir3_mlp", inputs, [helper.make_tensor_value_info("y", F, [2, 5])], inits)
    return _model(g, opset=8, ir=3, doc="IR 3 / opset 8 MLP: initializers listed as graph inputs")


def if_loop():
    rng = np.random.default_rng(5)
    T = TensorProto
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w_outer"], ["t"], name="then_fc")], "then", [],
                               [helper.make_tensor_value_info("t", F, ["batch", 8])])
    else_g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w_local", "b_outer"], ["e"], name="else_fc", transB=1)], "else", [],
        [helper.make_tensor_value_info("e", F, ["batch", 8])],
        [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32) / 3, "w_local")])
    body = helper.make_graph(
        [helper.make_node("MatMul", ["y_in", "w_loop"], ["mm"], name="loop_fc"),
         helper.make_node("Add", ["mm", "b_outer"], ["pre"], name="loop_bias"),
         helper.make_node("Relu", ["pre"], ["y_out"], name="loop_relu"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop_cond")],
        "body", [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("cond_in", T.BOOL, []),
                 helper.make_tensor_value_info("y_in", F, ["batch", 8])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("y_out", F, ["batch", 8])])
    nodes = [helper.make_node("If", ["use_then"], ["branch"], name="branch", then_branch=then_g, else_branch=else_g),
             helper.make_node("Loop", ["trips", "", "branch"], ["y"], name="loop", body=body)]
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (rng.standard_normal((8, 8)).astype(np.float32) / 3, "w_outer"), (rng.standard_normal(8).astype(np.float32), "b_outer"),
        (rng.standard_normal((8, 8)).astype(np.float32) / 3, "w_loop"), (np.array(3, np.int64), "trips")]]
    g = helper.make_graph(nodes, "if_loop", [helper.make_tensor_value_info("x", F, ["batch", 8]),
                                             helper.make_tensor_value_info("use_then", T.BOOL, [])],
                          [helper.make_tensor_value_info("y", F, ["batch", 8])], inits)
    return _model(g, doc="FC layers inside If branches and a Loop body")


def audio_block(c=32, hidden=64, frames="t"):
    """A Conv1d-style audio block on channels-first features [batch, C, T], weights on the left as speech models
    write them (`W @ x + b`, b of shape [N, 1]): W1 @ x + b1 -> Relu -> W2 @ h + b2 -> Relu -> W3 @ h."""
    rng = np.random.default_rng(7)
    nodes, inits, x, k = [], [], "features", c
    for i, n in enumerate((hidden, hidden, 16)):
        inits.append(numpy_helper.from_array((rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [f"w{i}", x], [f"m{i}"], name=f"proj{i}"))
        x = f"m{i}"
        if i < 2:
            inits.append(numpy_helper.from_array(rng.standard_normal((n, 1)).astype(np.float32) * 0.1, f"b{i}"))
            nodes += [helper.make_node("Add", [x, f"b{i}"], [f"h{i}"], name=f"proj{i}_bias"),
                      helper.make_node("Relu", [f"h{i}"], [f"a{i}"])]
            x = f"a{i}"
        k = n
    nodes[-1].output[0] = "embeddings"
    g = helper.make_graph(nodes, "audio_block", [helper.make_tensor_value_info("features", F, ["batch", c, frames])],
                          [helper.make_tensor_value_info("embeddings", F, ["batch", 16, frames])], inits)
    return _model(g, doc="Conv1d-style block, weights on the left (W @ x)")


def grouped():
    """A layer with a weight per group (multi-head projections written as one batched MatMul):
    x [batch, 4, seq, 16] @ W [4, 16, 8] -> Relu."""
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="grouped_fc"), helper.make_node("Relu", ["h"], ["y"])]
    g = helper.make_graph(nodes, "grouped", [helper.make_tensor_value_info("x", F, ["batch", 4, "seq", 16])],
                          [helper.make_tensor_value_info("y", F, ["batch", 4, "seq", 8])],
                          [numpy_helper.from_array((rng.standard_normal((4, 16, 8)) / 4).astype(np.float32), "w")])
    return _model(g, doc="a constant weight per group")


def wrapped_gemms(layers=3, k=32):
    """Linear layers on [batch, seq, K] as older exporters wrote them: Reshape [-1, K] -> Gemm -> Reshape back to
    Concat(Shape(x)[:2], [N]), with Relus between."""
    rng = np.random.default_rng(9)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        inits += [numpy_helper.from_array((rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array((rng.standard_normal(k) * 0.1).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("Shape", [x], [f"shape{i}"]),
                  helper.make_node("Slice", [f"shape{i}", "zero", "two"], [f"lead{i}"]),
                  helper.make_node("Concat", [f"lead{i}", "k"], [f"target{i}"], axis=0),
                  helper.make_node("Reshape", [x, "flat"], [f"rows{i}"]),
                  helper.make_node("Gemm", [f"rows{i}", f"w{i}", f"b{i}"], [f"g{i}"], name=f"linear{i}", transB=1),
                  helper.make_node("Reshape", [f"g{i}", f"target{i}"], [f"y{i}"])]
        x = f"y{i}"
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    nodes[-1].output[0] = "out"
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("flat", [-1, k]), ("zero", [0]), ("two", [2]), ("k", [k]))]
    g = helper.make_graph(nodes, "wrapped_gemms", [helper.make_tensor_value_info("x", F, ["batch", "seq", k])],
                          [helper.make_tensor_value_info("out", F, ["batch", "seq", k])], inits)
    return _model(g, opset=13, doc="Reshape-wrapped Gemms")


def main():
    os.makedirs(MODELS, exist_ok=True)
    for name, build in [("chapter_fc", chapter_fc), ("mlp", mlp), ("transformer_block", transformer_block),
                        ("computed_weights", computed_weights), ("ir3_mlp", ir3_mlp), ("if_loop", if_loop),
                        ("audio_block", audio_block), ("grouped", grouped), ("wrapped_gemms", wrapped_gemms)]:
        path = os.path.join(MODELS, name + ".onnx")
        onnx.save(build(), path)
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
