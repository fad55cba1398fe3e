"""Which of the element-wise ops the rewrite moves onto the image onnxruntime fuses into a kernel of its own (its
Gelu, FastGelu, QuickGelu fusions, ...), found by asking it. Those keep their single values as they are: onnxruntime's
fusions match a scalar (or a [1]) constant, and a [1, 1, 1, 1] one breaks them (Hugging Face GPT-2's tanh GELU:
FastGelu fused, or 8 ops at 1.12x the model's time). The others' single values get the image's rank (writer.py).

    probe    the moved ops as a model of their own, in their original form: what they read from elsewhere are
             its inputs, their constants its initializers, and each tensor the rest of the graph reads goes
             into a ReduceSum (onnxruntime does not fuse an op whose output is a graph output);
             onnxruntime optimizes it at its default level, into a temporary folder that is removed after
    fused    a node whose output no node of its op makes any more (fused, or removed as a no-op)

A probe that onnxruntime cannot build (an op it lacks, say) counts every candidate as fused: nothing changes.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterable, List, Set

import onnx
from onnx import helper, numpy_helper

from ..graph.constants import Constants
from ..graph.shapes import TypeShape
from ..rewrite.region import BINARY, UNARY, Region


def _value_info(name: str, shapes: Dict[str, TypeShape]) -> onnx.ValueInfoProto:
    elem, dims = shapes.get(name, (onnx.TensorProto.FLOAT, None))
    if dims is None:
        return helper.make_tensor_value_info(name, elem or onnx.TensorProto.FLOAT, None)
    return helper.make_tensor_value_info(name, elem, [d if isinstance(d, int) else f"d{i}" for i, d in enumerate(dims)])


def probe(nodes: List[onnx.NodeProto], consts: Constants, shapes: Dict[str, TypeShape],
          model: onnx.ModelProto) -> onnx.ModelProto:
    """`nodes` as a model of their own (module docstring)."""
    made = {o for n in nodes for o in n.output if o}
    ids = {id(n) for n in nodes}
    inputs, initializers = [], []
    index = consts.index
    for name in dict.fromkeys(i for n in nodes for i in n.input if i and i not in made):
        source = index.producer.get(name)
        value = consts.value(name) if source is None or source.op_type == "Constant" else None
        if value is None:   # (a value a DequantizeLinear computes stays computed, as onnxruntime sees it)
            inputs.append(_value_info(name, shapes))
        else:
            initializers.append(numpy_helper.from_array(value, name))
    read = [o for o in made if o in index.graph_outputs or any(id(r) not in ids for r in index.consumers.get(o, []))]
    ends = [helper.make_node("ReduceSum", [o], [o + "_probe"], keepdims=0) for o in read]   # (a fusion's last
    outputs = [helper.make_tensor_value_info(e.output[0], shapes.get(o, (1, None))[0] or 1, None)  # op may not be a
               for o, e in zip(read, ends)]                                                  # graph output)
    graph = helper.make_graph(list(nodes) + ends, "fc2conv_probe", inputs, outputs, initializers)
    probed = helper.make_model(graph, opset_imports=list(model.opset_import))
    probed.ir_version = model.ir_version
    return probed


def fused(moved: Iterable[onnx.NodeProto], candidates: List[onnx.NodeProto], consts: Constants,
          shapes: Dict[str, TypeShape], model: onnx.ModelProto) -> Set[int]:
    """The ids of the `candidates` (some of the `moved` nodes) that onnxruntime fuses or removes."""
    if not candidates:
        return set()
    import onnxruntime as ort
    try:
        with tempfile.TemporaryDirectory(prefix="fc2conv-probe-") as tmp:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            ort.InferenceSession(probe(list(moved), consts, shapes, model).SerializeToString(), so,
                                 providers=["CPUExecutionProvider"])
            optimized = onnx.load(so.optimized_model_filepath)
    except Exception:   # noqa: BLE001 -- onnxruntime's own failure: change nothing
        return {id(n) for n in candidates}
    made = {o: n.op_type for n in optimized.graph.node for o in n.output}
    return {id(n) for n in candidates if made.get(n.output[0]) != n.op_type}


def ranked(region: Region, consts: Constants, shapes: Dict[str, TypeShape], model: onnx.ModelProto) -> Set[int]:
    """The moved binary ops whose single values get the image's rank: those with one (below rank 4) that
    onnxruntime does not fuse."""
    moved = [n for n in region.moved.values() if n.domain in ("", "ai.onnx") and n.op_type in UNARY | BINARY]
    candidates = []
    for node in moved:
        values = [consts.peek(i) for i in node.input if i and i not in region.image_of] \
            if node.op_type in BINARY else []
        if any(v is not None and v.size == 1 and v.ndim < 4 for v in values):
            candidates.append(node)
    return {id(n) for n in candidates} - fused(moved, candidates, consts, shapes, model)
