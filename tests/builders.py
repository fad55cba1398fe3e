"""Small ONNX graphs for the tests, built with onnx.helper (no torch), and the onnxruntime runs they need."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, inits=(), opset=17, ir=8, **kw) -> onnx.ModelProto:
    g = helper.make_graph(list(nodes), kw.pop("graph_name", "g"), list(inputs), list(outputs), list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def vi(name: str, shape, elem=F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def gemm_model(m: int, k: int, n: int, trans_a=0, trans_b=0, alpha=1.0, beta=1.0, c_shape=None, seed=0,
               dtype=np.float32, m_dim=None, opset=17, ir=8):
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    inits = [init("B", b)]
    ins = ["A", "B"]
    if c_shape is not None:
        inits.append(init("C", rng.standard_normal(c_shape).astype(dtype)))
        ins.append("C")
    a_shape = [k, m_dim or m] if trans_a else [m_dim or m, k]
    node = helper.make_node("Gemm", ins, ["Y"], name="gemm", transA=trans_a, transB=trans_b, alpha=alpha,
                            beta=beta)
    return make_model([node], [vi("A", a_shape, elem)], [vi("Y", [m_dim or m, n], elem)], inits, opset, ir)


def matmul_add_model(x_shape: Sequence, k: int, n: int, bias_shape=None, seed=0, dtype=np.float32,
                     bias_first=False, opset=17, ir=8):
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [init("W", rng.standard_normal((k, n)).astype(dtype))]
    nodes = [helper.make_node("MatMul", ["X", "W"], ["H" if bias_shape is not None else "Y"], name="matmul")]
    if bias_shape is not None:
        inits.append(init("bias", rng.standard_normal(bias_shape).astype(dtype)))
        nodes.append(helper.make_node("Add", ["bias", "H"] if bias_first else ["H", "bias"], ["Y"], name="add"))
    out_shape = list(x_shape[:-1]) + [n]
    return make_model(nodes, [vi("X", list(x_shape), elem)], [vi("Y", out_shape, elem)], inits, opset, ir)


def run(model: onnx.ModelProto, feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def ops(model: onnx.ModelProto) -> List[str]:
    return [n.op_type for n in model.graph.node]


def rand(shape, dtype=np.float32, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def assert_converted(report, names) -> None:
    """The run verified, converted exactly the layers `names` (report names, scope included) and reverted none.
    Every test that converts a model says which layers it expects: `verified` alone also holds when each rewrite
    was wrong, reverted, and the original written back."""
    assert report.verified, report.text()
    assert not report.reverted, report.text()
    assert sorted(c.name for c in report.converted) == sorted(names), report.text()


def assert_conv_attributes(model: onnx.ModelProto) -> None:
    """Every Conv names its kernel_shape (some runtimes require it), equal to its weight's spatial dims."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        kernel = next((list(a.ints) for a in conv.attribute if a.name == "kernel_shape"), None)
        weight = conv.input[1]
        if weight not in shapes and weight in producer:   # DequantizeLinear of the integer weight
            weight = producer[weight].input[0]
        assert kernel == shapes[weight][2:], f"Conv '{conv.name}': kernel_shape {kernel}, weight {shapes[weight]}"


def assert_canonical(path) -> None:
    """The file is byte for byte what onnx.save writes for the model it holds (the .onnx part, with external
    data): the only encoding every ONNX reader accepts (OpenVINO's rejects fields split into fragments)."""
    data = open(str(path), "rb").read()
    assert onnx.load_model_from_string(data).SerializeToString() == data, f"{path} is not canonical"


def set_external_location(model: onnx.ModelProto, location: str) -> None:
    """Point every external tensor of the main graph at `location` (to build bad or hostile inputs)."""
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
