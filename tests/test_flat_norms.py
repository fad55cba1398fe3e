"""A BatchNormalization over an FC layer's flattened rows (LeViT's Linear + BatchNorm1d) runs on the image as the
norm alone (rewrite/flat_norms.py): the Reshapes around it go, and onnxruntime folds it into the Conv."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from builders import assert_converted, init, make_model, ops, rand, run, vi
from passes.fc_to_conv import Options, convert

C, N, T = 8, 16, 5


def bn_inits(prefix, n, seed):
    return [init(prefix + "_s", rand(n, seed=seed) + 2), init(prefix + "_b", rand(n, seed=seed + 1)),
            init(prefix + "_m", rand(n, seed=seed + 2)), init(prefix + "_v", np.abs(rand(n, seed=seed + 3)) + 0.5)]


def levit_mlp(back_shape=(-1, T, C // 2, 2), train_outputs=False, allowzero=1):
    """x [B, T, C] -> fc1 -> Reshape [-1, N] -> BN -> Reshape [-1, T, N] -> HardSwish -> fc2 -> Reshape [-1, C]
    -> BN -> Reshape `back_shape` (a heads split by default): LeViT's MLP as torch's dynamo exporter writes it
    (allowzero=1 on its Reshapes)."""
    inits = [init("w1", rand((C, N), seed=3)), init("w2", rand((N, C), seed=5)),
             init("flat1", np.array([-1, N], np.int64)), init("back1", np.array([-1, T, N], np.int64)),
             init("flat2", np.array([-1, C], np.int64)), init("back2", np.array(back_shape, np.int64))]
    inits += bn_inits("bn1", N, 10) + bn_inits("bn2", C, 20)
    n = helper.make_node
    bn2_out = ["n2", "mean_out", "var_out"] if train_outputs else ["n2"]
    nodes = [n("MatMul", ["x", "w1"], ["m1"], name="fc1"), n("Reshape", ["m1", "flat1"], ["f1"], allowzero=1),
             n("BatchNormalization", ["f1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["n1"], name="bn1"),
             n("Reshape", ["n1", "back1"], ["r1"], allowzero=1), n("HardSwish", ["r1"], ["h"]),
             n("MatMul", ["h", "w2"], ["m2"], name="fc2"), n("Reshape", ["m2", "flat2"], ["f2"], allowzero=1),
             n("BatchNormalization", ["f2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], bn2_out, name="bn2",
               **({"training_mode": 1} if train_outputs else {})),
             n("Reshape", ["n2", "back2"], ["y"], allowzero=allowzero)]
    outs = [vi("y", None)] + ([vi("mean_out", None)] if train_outputs else [])
    return make_model(nodes, [vi("x", ["b", T, C])], outs, inits, opset=18)


def producers(model):
    return {o: nd for nd in model.graph.node for o in nd.output}


def check_same(model, new):
    """The output matches the original on onnxruntime within 1e-5 (fp32, 8/16 channels, 2 batch sizes)."""
    for b in (1, 3):
        x = rand((b, T, C), seed=9 + b)
        np.testing.assert_allclose(run(new, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_a_flat_norm_runs_on_the_image_as_the_norm_alone(tmp_path):
    """Both norms read their Conv directly; the first pair of Reshapes is gone, the second Reshape of the other
    norm (a heads split) stays and reads the rows from the way out; onnxruntime's optimized graph folds both
    norms into their Convs."""
    m = levit_mlp()
    new, report = convert(m)
    assert_converted(report, ["fc1", "fc2"])
    prod = producers(new)
    norms = [nd for nd in new.graph.node if nd.op_type == "BatchNormalization"]
    assert len(norms) == 2 and all(prod[nd.input[0]].op_type == "Conv" for nd in norms), ops(new)
    assert prod[norms[1].output[0]].op_type == "BatchNormalization"
    assert "HardSwish" in ops(new) and prod[next(nd for nd in new.graph.node if nd.op_type == "HardSwish").input[0]
                                             ].op_type == "BatchNormalization", ops(new)   # stays on the image
    assert {t.name for t in new.graph.initializer} & {"flat1", "back1", "flat2"} == set()
    assert any(nd.op_type == "Reshape" and nd.input[1] == "back2" and nd.output[0] == "y" for nd in new.graph.node)
    check_same(m, new)
    optimized = basic_optimized(new, tmp_path)
    assert "BatchNormalization" not in ops(optimized), ops(optimized)


def basic_optimized(model, tmp_path):
    """The graph onnxruntime runs at its basic level (where it folds a Conv's BatchNormalization)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onnx.load(so.optimized_model_filepath)


def test_a_second_reshape_that_restores_the_rows_vanishes():
    m = levit_mlp(back_shape=(-1, T, C))
    new, report = convert(m)
    assert_converted(report, ["fc1", "fc2"])
    assert "back2" not in {t.name for t in new.graph.initializer}
    check_same(m, new)


@pytest.mark.parametrize("case, back_shape, train", [("a 0 in the second shape", (0, -1), False),
                                                      ("the norm's running statistics read", (-1, T, C), True)])
def test_a_norm_that_cannot_move_stays_between_its_reshapes(case, back_shape, train):
    """A 0 copies a dim of the 2-D tensor (allowzero 0): [0, -1] keeps [B*T, C] where the rows [B, T, C] would
    give [B, T*C]. A norm whose other outputs are read is not inference. Either stays in rows, the layer
    converted."""
    m = levit_mlp(back_shape=back_shape, train_outputs=train, allowzero=0)
    new, report = convert(m, Options(verify=not train))
    assert sorted(c.name for c in report.converted) == ["fc1", "fc2"], report.text()
    prod = producers(new)
    bn2 = next(nd for nd in new.graph.node if nd.name == "bn2")
    assert prod[bn2.input[0]].op_type == "Reshape" and prod[bn2.input[0]].input[1] == "flat2", case
    if not train:
        check_same(m, new)
