"""Inputs for the verification run: seeded random feeds for every graph input, or the user's own.

- Float inputs: standard normal values. Bool inputs: random True/False.
- Integer inputs read by a Gather as indices (token ids, position ids): uniform in [0, size of the gathered axis),
  so every id is valid; read by a OneHot (magika's bytes): uniform in [0, depth). Other integer inputs (attention
  masks, flags): 0 or 1 at random, with the first position of the last axis 1, so that a padding mask never
  masks a whole row. (They were all ones: a mask then never masked anything.) A mask that dim_relations.py finds
  covering a decoder's past and new tokens is all ones, as a decoder runs (GroupQueryAttention reads its sum as the
  sequence's length and refuses one shorter than the new tokens). The report names the inputs used
  and flags any input whose every value is the same.
- Dynamic dims: `--input-shape NAME:DxDxD` fixes an input's whole shape. Otherwise each named dynamic dim
  (dim_param) takes one value per input set, the same for every input that names it; the i-th distinct name gets
  2 + i in the first set and one more in each further set, so batch and sequence differ from each other and
  between sets (a baked-in size then shows up as a failure). Unnamed dynamic dims count as distinct names.
- `--inputs FILE.npz` supplies arrays by input name; inputs it lacks are generated as above.
- Dims written as -1 or 0, or left unnamed, are dynamic.
- Real models accept only some inputs (a detector's H and W multiples of 32, an audio model's sample rate one of
  the values it compares with, a reflect Pad that needs a long enough signal). candidates() gives the input sets
  to try, in order, until the original runs on one: the default above; then the first dim 1 and every other
  dynamic dim 64, 224 or 32; then every dynamic dim 1 but the last, 512, 1536 or 64. An integer scalar input that
  the graph compares with constants (Equal) takes the first of those constants instead of 1.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import helper

from ..errors import BadInput
from ..graph.constants import Constants
from ..graph.graph_index import GraphIndex, default_opset
from ..graph.shapes import TypeShape, dims_of
from .dim_relations import relations
from .input_dims import STRATEGIES, input_shapes


def parse_input_shapes(specs: List[str]) -> Dict[str, List[int]]:
    """['input_ids:1x128', 'mask:1x128'] -> {'input_ids': [1, 128], ...}"""
    shapes: Dict[str, List[int]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = [int(d) for d in dims.split("x")] if dims else []
            if any(d < 0 for d in shapes[name]):
                raise ValueError
        except ValueError:
            raise BadInput(f"--input-shape {spec!r}: expected NAME:DxD..., e.g. input_ids:1x128") from None
    return shapes


def real_inputs(graph: onnx.GraphProto) -> List[onnx.ValueInfoProto]:
    """Graph inputs the caller feeds (below IR 4 initializers are listed as inputs too: those are not fed)."""
    inits = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def _index_ranges(graph: onnx.GraphProto, shapes: Dict[str, TypeShape],
                  consts: Optional[Constants] = None) -> Dict[str, int]:
    """Input tensor -> how many values it may take as an index: the gathered axis of a Gather that reads it, the
    depth of a OneHot that reads it (the smallest, when several do)."""
    ranges: Dict[str, int] = {}
    for node in graph.node:
        index, size = None, None
        if node.op_type == "Gather" and len(node.input) == 2:
            data = shapes.get(node.input[0], (0, None))[1]
            axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
            if data and isinstance(data[axis], int):
                index, size = node.input[1], data[axis]
        elif node.op_type == "OneHot" and len(node.input) == 3 and consts is not None:
            depth = consts.value(node.input[1])
            if depth is not None and depth.size == 1:
                index, size = node.input[0], int(depth.reshape(-1)[0])
        if index is not None:
            ranges[index] = min(ranges.get(index, size), size)
    return ranges


def compared_values(model: onnx.ModelProto) -> Dict[str, List[int]]:
    """Integer constants each tensor is compared with by an Equal of the main graph (sample rates, say)."""
    consts = Constants(GraphIndex(model.graph), model.ir_version, default_opset(model))
    found: Dict[str, List[int]] = {}
    for node in model.graph.node:
        if node.op_type != "Equal" or len(node.input) != 2:
            continue
        for a, b in (node.input, node.input[::-1]):
            value = consts.value(b) if consts.value(a) is None else None
            if value is not None and value.dtype.kind in "iu" and value.size == 1:
                found.setdefault(a, []).append(int(value.reshape(-1)[0]))
    return found


def candidates(model: onnx.ModelProto, shapes: Dict[str, TypeShape], sets: int, seed: int = 0,
               fixed: Optional[Dict[str, List[int]]] = None, given: Optional[Dict[str, np.ndarray]] = None,
               hold=list):
    """(description, feeds) to try in order (module docstring); one when the user fixed every input. `hold()` makes
    the container of each candidate's sets (held.Held keeps large ones in files)."""
    inputs = real_inputs(model.graph)
    complete = all(i.name in (fixed or {}) or i.name in (given or {}) for i in inputs)
    for strategy in STRATEGIES[:1] if complete else STRATEGIES:
        feeds = make_feeds(model, shapes, sets, seed, fixed, given, strategy, hold())
        yield describe(feeds), feeds
        del feeds


def describe(feeds) -> str:
    """'x [2, 4] / [3, 4], sr = 16000': each input's shapes over the sets (a scalar's value); an input whose every
    value is the same in every set is flagged, since it barely exercises what reads it. Reads each set once."""
    shapes: Dict[str, List[List[int]]] = {}
    first: Dict[str, np.ndarray] = {}   # an input's first value, while every value seen so far equals it
    scalars: Dict[str, np.ndarray] = {}
    for s, feed in enumerate(feeds):
        for name, value in feed.items():
            if s == 0:
                shapes[name] = []
                if value.ndim == 0:
                    scalars[name] = value
                elif value.size > 1:
                    first[name] = value.reshape(-1)[:1]
            if list(value.shape) not in shapes[name]:
                shapes[name].append(list(value.shape))
            if name in first and not (value.size and np.all(value == first[name])):
                del first[name]
    parts = []
    for name in shapes:
        if name in scalars:
            parts.append(f"{name} = {scalars[name].item()}")
            continue
        text = f"{name} " + " / ".join(map(str, shapes[name]))
        if name in first:
            text += f" (CONSTANT: every value {first[name].item()})"
        parts.append(text)
    return ", ".join(parts)


def make_feeds(model: onnx.ModelProto, shapes: Dict[str, TypeShape], sets: int, seed: int = 0,
               fixed: Optional[Dict[str, List[int]]] = None,
               given: Optional[Dict[str, np.ndarray]] = None, strategy=STRATEGIES[0], into=None):
    """The input sets, appended to `into` (a list, or a held.Held that keeps large sets in files) as each is made."""
    fixed, given = fixed or {}, given or {}
    inputs = real_inputs(model.graph)
    names = {i.name for i in inputs}
    for name in list(fixed) + list(given):
        if name not in names:
            raise BadInput(f"'{name}' is not an input of the model; its inputs are: {', '.join(sorted(names))}")
    ranges = _index_ranges(model.graph, shapes,
                           Constants(GraphIndex(model.graph), model.ir_version, default_opset(model)))
    compared = compared_values(model)
    symbols: Dict[str, int] = {}
    related, decode = relations(model, inputs, shapes)
    covering = {i.name for i in inputs if any(isinstance(d, str) and " + " in related.get(d, "")
                                              for d in dims_of(i.type)[1] or [])}
    feeds = [] if into is None else into
    for s in range(sets):
        rng = np.random.default_rng(seed + s)
        feed: Dict[str, np.ndarray] = {}
        shapes_of = input_shapes(inputs, fixed, given, symbols, s, strategy, related, decode)
        for inp in inputs:
            if inp.name in given:
                feed[inp.name] = given[inp.name]
                continue
            elem, dims = dims_of(inp.type)
            if elem == 0:
                raise BadInput(f"input '{inp.name}' is not a tensor; pass its values with --inputs FILE.npz")
            shape = shapes_of[inp.name]
            dtype = helper.tensor_dtype_to_np_dtype(elem)
            if np.issubdtype(dtype, np.floating) or elem == onnx.TensorProto.BFLOAT16:
                value = _normal(rng, shape, dtype)
            elif dtype == np.bool_:
                value = rng.integers(0, 2, shape).astype(np.bool_)
            elif inp.name in ranges:
                value = rng.integers(0, max(ranges[inp.name], 1), shape).astype(dtype)
            elif inp.name in compared and int(np.prod(shape)) == 1:
                value = np.full(shape, compared[inp.name][0], dtype=dtype)
            elif inp.name in covering:   # a decoder's mask over past + new tokens: every one of them there
                value = np.ones(shape, dtype)
            else:   # a mask, a length, a flag: 0 or 1, never a constant; a padding mask never masks a whole row
                value = rng.integers(0, 2, shape).astype(dtype)
                if value.ndim:
                    value[..., 0] = 1
            feed[inp.name] = value
        feeds.append(feed)
        if given and len(given) == len(inputs):
            break  # the user's own data is one complete input set
    return feeds


NORMAL_CHUNK = 2**20


def _normal(rng: np.random.Generator, shape: List[int], dtype) -> np.ndarray:
    """rng.standard_normal(shape).astype(dtype), drawn a chunk at a time (the same values: the generator's stream
    does not depend on how it is split), so that no float64 copy of a large input is ever made."""
    value = np.empty(shape, dtype)
    flat = value.reshape(-1)
    for start in range(0, flat.size, NORMAL_CHUNK):
        stop = min(start + NORMAL_CHUNK, flat.size)
        flat[start:stop] = rng.standard_normal(stop - start)
    return value


def load_npz(path: str) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:
        raise BadInput(f"--inputs {path}: not a readable .npz file ({type(exc).__name__})") from None
