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

from .graph_index import subgraphs
from .validate import elements

Dim = Union[int, str, None]
TypeShape = Tuple[int, Optional[List[Dim]]]  # (elem_type, dims or None when the rank is unknown)

SMALL = 1024  # initializers with at most this many elements keep their values (shape tensors, scales)


def _light_graph(graph: onnx.GraphProto) -> onnx.GraphProto:
    light = onnx.GraphProto(name=graph.name)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
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
    return table


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


def _fill_from_symbolic(light: onnx.ModelProto, table: Dict[str, TypeShape]) -> None:
    """onnx's inference stops at operators it does not know (com.microsoft's QGemm, say) and at some exporters'
    graphs; onnxruntime's symbolic shape inference knows onnxruntime's operators and merges dynamic dims. What it
    finds fills in the tensors onnx left unknown, and nothing else."""
    try:
        SymbolicShapeInference = _symbolic_shape_inference()
        with contextlib.redirect_stdout(io.StringIO()):
            inferred = SymbolicShapeInference.infer_shapes(light, auto_merge=True, guess_output_rank=True)
    except Exception:  # a help, not a requirement
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
