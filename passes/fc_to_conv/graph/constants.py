"""Which tensors are constants, and their values as numpy arrays.

A tensor is constant when it is
- an initializer that no graph input can override (from IR version 4 on, an initializer that is also listed as a
  graph input is a default value the caller may replace; below IR 4 every initializer is listed as an input and
  all of them are constants),
- the output of a Constant node, or
- the output of a small set of ops (Identity, Transpose, Cast, Reshape, Squeeze, Unsqueeze, Flatten,
  ConstantOfShape, element-wise Mul/Div/Add/Sub, and DequantizeLinear) whose inputs are all constants: exporters
  and older models compute weights this way, e.g. `MatMul(x, Transpose(W))`; quantizers write
  `DequantizeLinear(W_int8, scale, zero_point)`.

Everything else, including anything that depends on a graph input, is not constant, and `reason(name)` says why in
one line. Values of an outer scope (weights of a main graph read inside an If or Loop body) resolve through
`outer`.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..files.external import read_tensor
from ..files.sinks import Sink
from .graph_index import GraphIndex, attr

FOLDABLE_OPS = ("Identity", "Transpose", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
                "Mul", "Div", "Add", "Sub", "ConstantOfShape", "DequantizeLinear", "Split", "Slice", "Gather")


def _constant_node_value(node: onnx.NodeProto, base_dir: Optional[str]) -> Optional[np.ndarray]:
    for a in node.attribute:
        if a.name == "value":
            return read_tensor(a.t, base_dir)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None  # sparse_value and string values are not weights


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} '{node.name}'" if node.name else node.op_type


def _split(node: onnx.NodeProto, args: List[np.ndarray], opset: int, output: int) -> np.ndarray:
    """Output `output` of a Split: sizes from the input (opset 13+), the attribute (before), or equal parts
    (num_outputs at opset 18, else one per output), the last part the smaller as onnx defines it."""
    x, axis = args[0], attr(node, "axis", 0) % max(args[0].ndim, 1)
    sizes = args[1] if len(args) > 1 else attr(node, "split")
    if sizes is None:
        parts = attr(node, "num_outputs") or len(node.output)
        step = -(-x.shape[axis] // parts)
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    bounds = np.cumsum([0] + [int(v) for v in sizes])
    return np.take(x, np.arange(bounds[output], bounds[output + 1]), axis=axis)


def _slice(node: onnx.NodeProto, args: List[np.ndarray]) -> np.ndarray:
    x = args[0]
    if len(args) > 1:    # opset 10+: starts, ends, axes, steps as inputs
        starts, ends = args[1], args[2]
        axes = args[3] if len(args) > 3 else range(len(starts))
        steps = args[4] if len(args) > 4 else [1] * len(starts)
    else:
        starts, ends = attr(node, "starts"), attr(node, "ends")
        axes, steps = attr(node, "axes") or range(len(starts)), [1] * len(starts)
    index = [slice(None)] * x.ndim
    for a, b, e, st in zip(axes, starts, ends, steps):
        index[int(a) % x.ndim] = slice(int(b), int(e), int(st))   # numpy clamps as onnx does
    return x[tuple(index)]


def _evaluate(node: onnx.NodeProto, args: List[np.ndarray], opset: int, output: int = 0) -> np.ndarray:
    op = node.op_type
    if op == "Split":
        return _split(node, args, opset, output)
    if op == "Slice":
        return _slice(node, args)
    if op == "Gather":
        return np.take(args[0], args[1].astype(np.int64), axis=attr(node, "axis", 0))
    if op == "Identity":
        return args[0]
    if op == "Transpose":
        return np.transpose(args[0], attr(node, "perm"))
    if op == "Cast":
        to = helper.tensor_dtype_to_np_dtype(attr(node, "to"))
        return args[0].astype(to)
    if op == "Reshape":
        shape = args[1] if len(args) > 1 else np.array(attr(node, "shape"))
        shape = [int(d) for d in shape]
        if attr(node, "allowzero", 0) == 0:
            shape = [args[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return args[0].reshape(shape)
    if op in ("Squeeze", "Unsqueeze"):
        axes = args[1] if len(args) > 1 else attr(node, "axes")
        x = args[0]
        if op == "Squeeze":
            return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(int(a) for a in axes))
        out_rank = x.ndim + len(axes)
        for a in sorted(int(a) % out_rank for a in axes):
            x = np.expand_dims(x, a)
        return x
    if op == "ConstantOfShape":
        value = attr(node, "value")
        fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
        return np.full([int(d) for d in args[0]], fill, dtype=fill.dtype)
    if op == "Flatten":
        axis = attr(node, "axis", 1) % max(args[0].ndim, 1)
        return args[0].reshape(int(np.prod(args[0].shape[:axis])), -1)
    if op == "DequantizeLinear":
        return _dequantize(node, args)
    fn = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}[op]
    out = fn(args[0], args[1])
    if np.issubdtype(args[0].dtype, np.integer) and op == "Div":
        out = np.trunc(out)
    return out.astype(args[0].dtype)


def layout_value(node: onnx.NodeProto, x: np.ndarray, consts: "Constants") -> np.ndarray:
    """What a layout op (Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Identity) makes of `x`, its other inputs
    (a Reshape's shape) read from `consts`."""
    return _evaluate(node, [x] + [consts.value(i) for i in node.input[1:] if i], consts.opset)


def _dequantize(node: onnx.NodeProto, args: List[np.ndarray]) -> np.ndarray:
    """(q - zero_point) * scale, per tensor or along `axis` (default 1); the result has the scale's type."""
    if attr(node, "block_size", 0):
        raise ValueError("block-quantized")
    q, scale = args[0], args[1]
    zp = args[2] if len(args) > 2 else np.zeros((), q.dtype)
    if scale.size > 1 or scale.ndim == 1 and zp.ndim == 1:
        axis = attr(node, "axis", 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.float64) - zp.astype(np.float64)) * scale.astype(np.float64)).astype(scale.dtype)


class Constants:
    """Constant values of one graph (and, through `outer`, of the graphs around it)."""

    def __init__(self, index: GraphIndex, ir_version: int, opset: int, outer: "Constants | None" = None,
                 base_dir: Optional[str] = None, sink: Optional[Sink] = None):
        self.index = index
        self.base_dir = base_dir or (outer.base_dir if outer is not None else None)  # for external data
        self.sink = sink or (outer.sink if outer is not None else None)   # the pass's own new constants
        self.ir_version = ir_version
        self.opset = opset
        self.outer = outer
        self._cache: Dict[str, Tuple[Optional[np.ndarray], str]] = {}

    def overridable(self, name: str) -> bool:
        return self.ir_version >= 4 and name in self.index.initializers and name in self.index.graph_inputs

    def value(self, name: str) -> Optional[np.ndarray]:
        return self._resolve(name)[0]

    def peek(self, name: str) -> Optional[np.ndarray]:
        """A stand-in with the constant's shape and dtype, without reading an initializer's data (None when the
        tensor is not a constant). Only `.shape`, `.ndim` and `.dtype` of the result mean anything."""
        init = self.index.initializers.get(name)
        if init is not None and not self.overridable(name) and init.data_type in onnx.TensorProto.DataType.values() \
                and init.data_type != onnx.TensorProto.UNDEFINED:
            dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
            return np.broadcast_to(np.zeros((), dtype), tuple(init.dims))
        return self.value(name)

    def reason(self, name: str) -> str:
        return self._resolve(name)[1]

    def source_nodes(self, names: Iterable[str]) -> List[onnx.NodeProto]:
        """The Constant and folded nodes that compute `names` inside this graph (none for an initializer), each
        once: a walk that remembers what it visited, so a constant subgraph shared by many layers, or read twice at
        every level (T5's relative position buckets), costs its size and not a power of its depth."""
        found: Dict[int, onnx.NodeProto] = {}
        todo = [n for n in names if n]
        while todo:
            node = self.index.producer.get(todo.pop())
            if node is not None and id(node) not in found:
                found[id(node)] = node
                todo.extend(i for i in node.input if i)
        return list(found.values())

    def _resolve(self, name: str) -> Tuple[Optional[np.ndarray], str]:
        if name in self._cache:
            return self._cache[name]
        found = self._compute(name)
        # an initializer's value is read again from its tensor when needed, not kept: a large model must not
        # hold a numpy copy of every weight
        if found[0] is None or name not in self.index.initializers:
            self._cache[name] = found
        return found

    def _compute(self, name: str) -> Tuple[Optional[np.ndarray], str]:
        idx = self.index
        if name in idx.initializers:
            if self.overridable(name):
                return None, (f"'{name}' is an initializer that is also a graph input (IR version "
                              f"{self.ir_version} >= 4): the caller can override it, so it is not a constant")
            tensor = idx.initializers[name]
            held = self.sink.get(tensor) if self.sink is not None else None
            return (read_tensor(tensor, self.base_dir) if held is None else held), ""
        node = idx.producer.get(name)
        if node is None:
            if name in idx.graph_inputs:
                return None, f"'{name}' is a graph input, not a constant"
            if self.outer is not None:
                return self.outer._resolve(name)
            return None, f"'{name}' has no producer and is not an initializer"
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = _constant_node_value(node, self.base_dir)
            if value is None:
                return None, f"'{name}' comes from a Constant node with a sparse or string value"
            return value, ""
        if node.op_type not in FOLDABLE_OPS or node.domain not in ("", "ai.onnx"):
            return None, f"'{name}' is computed at run time by {_label(node)}"
        args = []
        for i in node.input:
            if not i:
                continue
            v, why = self._resolve(i)
            if v is None:
                return None, f"'{name}' is computed from run-time values by {_label(node)}"
            args.append(v)
        try:
            return _evaluate(node, args, self.opset, list(node.output).index(name)), ""
        except Exception as exc:  # a malformed constant subgraph is a reason to skip, not a crash
            return None, f"'{name}' could not be folded through {_label(node)}: {exc}"
