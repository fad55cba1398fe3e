"""Structural checks of a loaded model, each failure one line that names the problem: a model that breaks one of
these rules is refused (exit 2) before the pass touches it.

- IR version and default-domain opset no newer than the installed onnx knows;
- every node input is produced earlier (by a node, a graph input, an initializer, or an enclosing graph), which
  rules out cycles and unsorted nodes; no tensor is written twice; every graph output is produced;
- no unknown operator in the default domain (one that neither onnx nor the installed onnxruntime registers: onnxruntime
  registers some of its contrib ops there, SimplifiedLayerNormalization as its transformer optimizer and
  onnxruntime-genai's model builder write it), no node of a domain the model does not import;
- no two initializers with one name; every initializer has a known element type and as much data as its shape
  says (external data is checked against its file by model_io).
"""
from __future__ import annotations

import functools
from typing import Dict, FrozenSet, Set

import onnx
from onnx import defs, helper

from ..errors import BadInput
from ..graph.graph_index import producers, subgraphs

T = onnx.TensorProto
_TYPED_FIELD = {T.FLOAT: ("float_data", 1), T.DOUBLE: ("double_data", 1), T.INT64: ("int64_data", 1),
                T.UINT32: ("uint64_data", 1), T.UINT64: ("uint64_data", 1), T.COMPLEX64: ("float_data", 2),
                T.COMPLEX128: ("double_data", 2)}
_PACKED_4BIT = {getattr(T, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(T, n)}


def elements(t: onnx.TensorProto) -> int:
    """How many values a tensor's dims call for."""
    n = 1
    for d in t.dims:
        n *= d
    return n


def raw_bytes(t: onnx.TensorProto) -> int:
    """Bytes of raw data the tensor's shape needs (0 for strings)."""
    if t.data_type == T.STRING:
        return 0
    n = elements(t)
    if t.data_type in _PACKED_4BIT:
        return (n + 1) // 2
    return n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def _check_tensor(t: onnx.TensorProto, where: str) -> None:
    if t.data_type == T.UNDEFINED or t.data_type not in T.DataType.values():
        raise BadInput(f"{where}: initializer '{t.name}' has an unknown element type ({t.data_type})")
    if any(d < 0 for d in t.dims):
        raise BadInput(f"{where}: initializer '{t.name}' has a negative dim {list(t.dims)}")
    if t.data_location == T.EXTERNAL or t.data_type == T.STRING:
        return
    n = elements(t)
    if t.HasField("raw_data"):
        need, have = raw_bytes(t), len(t.raw_data)
    else:
        field, per = _TYPED_FIELD.get(t.data_type, ("int32_data", 1))
        need, have = n * per, len(getattr(t, field))
        if t.data_type in _PACKED_4BIT:
            need = (n + 1) // 2
    if have < need:
        raise BadInput(f"{where}: initializer '{t.name}' holds {have} of the {need} values its shape "
                       f"{list(t.dims)} needs (data shorter than its shape)")


@functools.lru_cache(maxsize=1)
def _runtime_default_ops() -> FrozenSet[str]:
    """The operators the installed onnxruntime registers in the default domain, onnx's own and its contrib ops
    (SimplifiedLayerNormalization; LayerNormalization before opset 17). Whatever onnxruntime runs is valid input."""
    try:
        from onnxruntime.capi import _pybind_state as runtime
        return frozenset(s.name for s in runtime.get_all_operator_schema() if s.domain in ("", "ai.onnx"))
    except (ImportError, AttributeError):   # a build without the schema registry: onnx's list alone
        return frozenset()


def known_default_op(op_type: str) -> bool:
    """Whether onnx or the installed onnxruntime knows `op_type` in the default domain."""
    return defs.has(op_type) or op_type in _runtime_default_ops()


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name}'" if node.name else f"{node.op_type} node writing '{node.output[0] if node.output else ''}'"


def _has_cycle(graph: onnx.GraphProto) -> bool:
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    state: Dict[int, int] = {}

    def visit(i: int) -> bool:  # iterative DFS would be longer; graphs with cycles are small in practice
        state[i] = 1
        for name in graph.node[i].input:
            j = producer.get(name)
            if j is None:
                continue
            if state.get(j) == 1 or (state.get(j) is None and visit(j)):
                return True
        state[i] = 2
        return False
    return any(state.get(i) is None and visit(i) for i in range(len(graph.node)))


def _check_graph(graph: onnx.GraphProto, outer: Set[str], imports: Dict[str, int], where: str) -> None:
    defined: Set[str] = set(outer)
    inits: Set[str] = set()
    for t in graph.initializer:
        if t.name in inits:
            raise BadInput(f"{where}: two initializers are named '{t.name}'")
        inits.add(t.name)
        _check_tensor(t, where)
    defined |= inits | {i.name for i in graph.input}
    writer: Dict[str, str] = {}
    later = producers(graph.node)
    for node in graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx"):
            if not known_default_op(node.op_type):
                raise BadInput(f"{where}: unknown operator '{node.op_type}' ({_label(node)}) in the default domain "
                               f"(neither onnx {onnx.__version__} nor the installed onnxruntime knows it)")
        elif domain not in imports:
            raise BadInput(f"{where}: {_label(node)} uses domain '{domain}', which the model does not import")
        for name in node.input:
            if not name or name in defined:
                continue
            if name in later:
                if _has_cycle(graph):
                    raise BadInput(f"{where}: the graph has a cycle (through {_label(node)}, which reads '{name}')")
                raise BadInput(f"{where}: nodes are out of order: {_label(node)} reads '{name}' before "
                               f"{_label(later[name])} writes it")
            raise BadInput(f"{where}: {_label(node)} reads '{name}', which no node, input or initializer provides")
        for g in subgraphs(node):
            _check_graph(g, defined, imports, where)
        for out in node.output:
            if not out:
                continue
            if out in writer or out in inits or out in {i.name for i in graph.input}:
                first = writer.get(out, "a graph input or initializer")
                raise BadInput(f"{where}: tensor '{out}' is written twice ({first} and {_label(node)})")
            writer[out] = _label(node)
            defined.add(out)
    for o in graph.output:
        if o.name not in defined:
            raise BadInput(f"{where}: graph output '{o.name}' is produced by nothing")


def validate(model: onnx.ModelProto, where: str) -> None:
    if model.ir_version > onnx.IR_VERSION:
        raise BadInput(f"{where}: IR version {model.ir_version} is newer than the installed onnx {onnx.__version__} "
                       f"knows (up to {onnx.IR_VERSION}); upgrade onnx")
    imports = {(i.domain if i.domain != "ai.onnx" else ""): i.version for i in model.opset_import}
    newest = defs.onnx_opset_version()
    if imports.get("", 0) > newest:
        raise BadInput(f"{where}: opset {imports['']} is newer than the installed onnx {onnx.__version__} knows "
                       f"(up to {newest}); upgrade onnx")
    for f in model.functions:
        imports.setdefault(f.domain, 1)
    _check_graph(model.graph, set(), imports, where)
