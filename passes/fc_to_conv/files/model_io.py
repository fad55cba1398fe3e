"""Opening a model safely, and the file-level facts of writing one.

open_model() turns every way a file can fail to be a usable model into a one-line BadInput; it never returns a
model whose external data it has not checked. The output is written by canonical.py or external.py into a
temporary folder beside it; move_into_place() renames it in, data first, so an interrupted or failed run leaves
no partial file. A model that had external data, or is too large for one protobuf (2 GB), gets its tensors in
`<output name>.data`.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Set, Tuple

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper
from onnx.serialization import registry

from ..errors import BadInput
from ..graph.graph_index import tensors
from .validate import raw_bytes, validate

PROTOBUF_LIMIT = 2**31 - 1


def external_tensors(model: onnx.ModelProto) -> list:
    return [t for t in tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]


def _check_external(model: onnx.ModelProto, folder: Path, path: str) -> None:
    root = folder.resolve()
    for t in external_tensors(model):
        try:
            info = external_data_helper.ExternalDataInfo(t)
        except ValueError as exc:  # onnx refuses negative offsets and lengths itself
            raise BadInput(f"{path}: tensor '{t.name}' has bad external data ({exc}): negative offset or length"
                           ) from None
        loc = info.location
        where = f"{path}: tensor '{t.name}' has external data '{loc}'"
        if not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")):
            raise BadInput(f"{where}: an absolute path; external data must be a file in the model's folder")
        target = folder / loc
        if os.path.islink(target):
            raise BadInput(f"{where}: a symbolic link; refusing to follow it out of the model's folder")
        resolved = target.resolve()
        if root not in resolved.parents and resolved != root:
            raise BadInput(f"{where}: outside the model's folder; external data must sit beside the model")
        if not resolved.is_file():
            raise BadInput(f"{where}: file not found in {folder}; copy it next to the model")
        offset = info.offset or 0
        if offset < 0 or (info.length is not None and info.length < 0):
            raise BadInput(f"{where}: negative offset or length")
        size = resolved.stat().st_size
        length = info.length if info.length is not None else size - offset
        need = raw_bytes(t)
        if length < need:
            raise BadInput(f"{where}: holds {length} bytes but shape {list(t.dims)} needs {need} "
                           "(data shorter than its shape)")
        if offset + length > size:
            raise BadInput(f"{where}: reaches byte {offset + length} but the file has {size} bytes (truncated?)")


def _parse(p: Path) -> onnx.ModelProto:
    """onnx.load_model(p, load_external_data=False); a protobuf file is parsed straight from its pages (mmap), which
    saves reading a copy of the whole file first."""
    if registry.get_format_from_file_extension(p.suffix) not in (None, "protobuf"):
        return onnx.load_model(str(p), load_external_data=False)   # a text format, by its extension
    model = onnx.ModelProto()
    with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
        model.ParseFromString(view)
    return model


def open_model(path: str) -> Tuple[onnx.ModelProto, Set[str]]:
    """The model at `path`, validated, its external data checked but not loaded, and the data files (resolved)."""
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{path}: no such file")
    if p.is_dir():
        raise BadInput(f"{path}: is a directory; give the path of an .onnx file")
    if p.stat().st_size == 0:
        raise BadInput(f"{path}: empty file, not an ONNX model")
    with p.open("rb") as f:
        head = f.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise BadInput(f"{path}: a Git LFS pointer, not the model; fetch it with `git lfs pull`")
    try:
        model = _parse(p)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise BadInput(f"{path}: not an ONNX model (protobuf could not parse it: {type(exc).__name__})") from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise BadInput(f"{path}: not an ONNX model (no graph or no IR version)")
    if not any(i.domain in ("", "ai.onnx") for i in model.opset_import):
        raise BadInput(f"{path}: the model imports no default-domain opset (opset_import is empty or foreign)")
    validate(model, path)
    _check_external(model, p.parent, path)
    files = {str((p.parent / external_data_helper.ExternalDataInfo(t).location).resolve())
             for t in external_tensors(model)}
    return model, files


def load_data(model: onnx.ModelProto, path: str) -> None:
    """Read the external data of a model from open_model into its tensors."""
    if not external_tensors(model):
        return
    try:
        external_data_helper.load_external_data_for_model(model, str(Path(path).parent))
    except Exception as exc:
        raise BadInput(f"{path}: external data could not be read: {exc}".splitlines()[0]) from None


def load(path: str) -> Tuple[onnx.ModelProto, Set[str]]:
    """The model at `path` with its external data loaded, and the external data files it read (resolved)."""
    model, files = open_model(path)
    load_data(model, path)
    return model, files


def size_on_disk(path: str, data_files: Set[str]) -> int:
    return os.path.getsize(path) + sum(os.path.getsize(f) for f in data_files)


def tensor_bytes(graph: onnx.GraphProto) -> int:
    """The size of a graph's tensor data, from the tensors' types and dims (ByteSize would walk every byte)."""
    return sum(raw_bytes(t) for t in tensors(graph) if t.data_type in onnx.TensorProto.DataType.values()
               and t.data_type != onnx.TensorProto.UNDEFINED)


def needs_external(model: onnx.ModelProto, had_external: bool) -> bool:
    """External data when the input had it, or when the model would come near protobuf's 2 GB limit."""
    return had_external or tensor_bytes(model.graph) > PROTOBUF_LIMIT - 256 * 2**20


def data_location(out: Path, keep: Set[str]) -> str:
    """`<output name>.data`, or a numbered variant where that would be one of the input's data files, which are
    never written to."""
    location, i = out.name + ".data", 1
    while str((out.parent / location).resolve()) in keep:
        location, i = f"{out.name}.{i}.data", i + 1
    return location


def move_into_place(folder: str, out: Path) -> None:
    """Rename the files an attempt wrote in `folder` (the model, and its data file if any) next to `out`: the data file first, the model last, so that the model
    never points at data that is not there yet."""
    names = sorted(os.listdir(folder), key=lambda n: n == out.name)
    for name in names:
        os.replace(os.path.join(folder, name), out.parent / name)
