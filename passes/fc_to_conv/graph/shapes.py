"""Static shapes and element types of every tensor, from onnx shape inference on a weightless copy.

Large initializers are replaced by empty tensors of the same type and dims before inference: inference needs
their shapes, not their values, and the copy then costs kilobytes instead of the model's size (and works for
models over 2 GB, which cannot be serialized for inference).

A dim is an int when known, a str for a named dynamic dim (dim_param), None when unknown.
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Dict, List, Optional, Tuple, Union

import onnx
from onnx import shape_inference

from ..files.validate import elements
from .constants import Constants
from .graph_index import GraphIndex, default_opset, subgraphs

Dim = Union[int, str, None]
TypeShape = Tuple[int, Optional[List[Dim]]]  # (elem_type, dims or None when the rank is unknown)

SMALL = 1024  # initializers with at most this many elements keep their values (shape tensors, scales)


def _light_graph(graph: onnx.GraphProto) -> onnx.GraphProto:
    light = onnx.GraphProto(name=graph.name)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    for i, vi in enumerate(light.input):   # some exporters (Paddle2ONNX) write -1 for a dynamic dim: name it
        for j, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value <= 0:
                d.dim_param = f"fc2conv_dynamic_{i}_{j}"
    light.node.extend(graph.node)
    for t in graph.initializer:
        if elements(t) <= SMALL and t.data_location != onnx.TensorProto.EXTERNAL:
            light.initializer.append(t)
        else:
            light.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims)
    return light


def dims_of(type_proto: onnx.TypeProto) -> TypeShape:
    if not type_proto.HasField("tensor_type"):
        return 0, None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return tt.elem_type, None
    dims: List[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tt.elem_type, dims


def light_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its large initializers emptied (same names, types and dims): its structure, cheaply."""
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    light.graph.CopyFrom(_light_graph(model.graph))
    return light


def infer(model: onnx.ModelProto) -> Dict[str, TypeShape]:
    """Type and shape of every tensor, in every scope, that inference can determine."""
    light = light_model(model)
    try:
        inferred = shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is a help, not a requirement: fall back to the declared shapes
        inferred = light
    table: Dict[str, TypeShape] = {}
    _collect(inferred.graph, table)
    _collect_initializers(model.graph, table)
    if any(o and table.get(o, (0, None))[1] is None for n in model.graph.node for o in n.output):
        _fill_from_symbolic(light, table)
        _fill_reshapes(light, table)
    return table


_SHAPE_OPS = ("Shape", "Cast", "Identity", "Slice", "Gather", "Concat", "Unsqueeze", "Squeeze")


def _fill_reshapes(light: onnx.ModelProto, table: Dict[str, TypeShape]) -> None:
    """The output shape of each Reshape that inference left unknown, from its target shape evaluated symbolically
    (Shape -> Slice/Gather -> Cast -> Concat with constants, as Paddle2ONNX writes a flatten): dims of the input by
    name, 0 copies, -1 is a new dynamic dim."""
    graph = light.graph
    consts = Constants(GraphIndex(graph), light.ir_version, default_opset(light))
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or table.get(node.output[0], (0, None))[1] is not None:
            continue
        target = _symbolic(node.input[1], consts, table, 0)
        src = table.get(node.input[0], (0, None))
        if target is None or src[1] is None:
            continue
        dims = [src[1][i] if d == 0 and i < len(src[1]) else d for i, d in enumerate(target)]
        dims = [f"fc2conv_reshaped_{node.output[0]}_{i}" if d == -1 else d for i, d in enumerate(dims)]
        table[node.output[0]] = (src[0], dims)


def _symbolic(name: str, consts, table, depth: int) -> Optional[List]:
    """A 1-D integer tensor as a list of ints and dim names, where the ops that make it allow: constants (and what
    constants.py folds from them) as ints, Shape as the dims of its input."""
    try:
        value = consts.value(name)
    except ValueError:   # a large initializer, emptied in the light model: not a shape
        return None
    if value is not None:
        return [int(v) for v in value.reshape(-1)] if value.dtype.kind in "iu" else None
    node = consts.index.producer.get(name)
    if node is None or node.op_type not in _SHAPE_OPS or depth > 12:
        return None
    if node.op_type == "Shape":
        dims = table.get(node.input[0], (0, None))[1]
        if dims is None:
            return None
        start = next((a.i for a in node.attribute if a.name == "start"), 0)
        end = next((a.i for a in node.attribute if a.name == "end"), len(dims))
        return list(dims)[start:end]
    args = [_symbolic(i, consts, table, depth + 1) if i else None for i in node.input]
    if args[0] is None:
        return None
    if node.op_type in ("Cast", "Identity", "Unsqueeze", "Squeeze"):
        return args[0]
    if node.op_type == "Concat":
        return None if any(a is None for a in args) else [d for a in args for d in a]
    if node.op_type == "Gather" and len(args) > 1 and args[1] is not None:
        return [args[0][i] for i in args[1]] if all(-len(args[0]) <= i < len(args[0]) for i in args[1]) else None
    if node.op_type == "Slice" and len(args) >= 3 and args[1] and args[2] and len(args[1]) == 1:
        return args[0][args[1][0]:min(args[2][0], len(args[0]))]
    return None


def _symbolic_shape_inference():
    """onnxruntime.tools.symbolic_shape_infer, loaded from its file: the package onnxruntime.tools imports torch
    when it is installed (1 s and 600 MB), which this module does not need."""
    import importlib.util
    import onnxruntime
    path = os.path.join(os.path.dirname(onnxruntime.__file__), "tools", "symbolic_shape_infer.py")
    spec = importlib.util.spec_from_file_location("fc2conv_symbolic_shape_infer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SymbolicShapeInference


def _infer_symbolic(model: onnx.ModelProto) -> Optional[onnx.ModelProto]:
    """SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True), step by step as it runs
    them, without its last step: when inference is incomplete it saves the model as `sym_shape_infer_temp.onnx`
    plus a `<uuid>.data` file into the current directory (the user's), then raises. Here an incomplete inference
    is None and nothing is written."""
    SymbolicShapeInference = _symbolic_shape_inference()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 7:
        return None
    inference = SymbolicShapeInference(2**31 - 1, True, True, 0)
    complete = False
    inference._preprocess(model)
    while inference.run_:
        complete = inference._infer_impl()
    inference._update_output_from_vi()
    return inference.out_mp_ if complete else None


def _fill_from_symbolic(light: onnx.ModelProto, table: Dict[str, TypeShape]) -> None:
    """onnx's inference stops at operators it does not know (com.microsoft's QGemm, say) and at some exporters'
    graphs; onnxruntime's symbolic shape inference knows onnxruntime's operators and merges dynamic dims. What it
    finds fills in the tensors onnx left unknown, and nothing else."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            inferred = _infer_symbolic(light)
    except Exception:  # a help, not a requirement
        return
    if inferred is None:
        return
    found: Dict[str, TypeShape] = {}
    _collect(inferred.graph, found)
    for name, (elem, dims) in found.items():
        if dims is not None and table.get(name, (0, None))[1] is None:
            table[name] = (elem or table.get(name, (0, None))[0], dims)


def _collect(graph: onnx.GraphProto, table: Dict[str, TypeShape]) -> None:
    """Types of every scope: onnx names tensors uniquely across a model's graphs, so one table serves all."""
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        table[vi.name] = dims_of(vi.type)
    for node in graph.node:
        for g in subgraphs(node):
            _collect(g, table)


def _collect_initializers(graph: onnx.GraphProto, table: Dict[str, TypeShape]) -> None:
    for t in graph.initializer:
        table[t.name] = (t.data_type, list(t.dims))
    for node in graph.node:
        for g in subgraphs(node):
            _collect_initializers(g, table)
