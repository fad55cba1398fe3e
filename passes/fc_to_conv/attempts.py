"""Where the attempts of a conversion live: each attempt is one run of the pass with some layers excluded (the
reverts), on a copy of a model in memory (InMemory) or written to its own folder beside the output (OnDisk); both
also cut every converted layer out on its own (`isolated`). An attempt returns a verify.revert.Outcome."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Set

import onnx

from .files import canonical, model_io
from .files.external import DataSink, stream_model
from .files.sinks import HeldData
from .options import Options
from .report import op_counts
from .verify.verdict import copy_of
from .verify.revert import Outcome


class InMemory:
    """Attempts on copies of a model in memory."""
    work: Optional[str] = None   # no folder of its own: what the verification must keep in files goes to tempfile's

    def __init__(self, model: onnx.ModelProto, options: Options):
        self.model, self.options = model, options

    def attempt(self, exclude: Dict[str, str]) -> Outcome:
        copy = copy_of(self.model)
        result = self.options.make_pass().run(copy, exclude, progress=self.options.progress)
        return Outcome(copy, result, op_counts(copy.graph), copy)

    def isolated(self) -> Dict[str, onnx.ModelProto]:
        return self.options.make_pass().run(copy_of(self.model), isolate=True).layers


class OnDisk:
    """Attempts written to files: each in its own folder under `work` beside the output, from which onnxruntime
    reads it. The first attempt edits the model already open (`opened`); later ones open the input again."""

    def __init__(self, input_path: str, out: Path, opened: onnx.ModelProto, data_files: Set[str], work: str,
                 options: Options):
        self.input_path, self.out, self.work, self.options = input_path, out, work, options
        self.base_dir = str(Path(input_path).resolve().parent)
        self.location = model_io.data_location(out, data_files)
        self.external = model_io.needs_external(opened, bool(data_files))
        self._opened: Optional[onnx.ModelProto] = opened

    def _model(self) -> onnx.ModelProto:
        model, self._opened = self._opened, None
        return model if model is not None else model_io.open_model(self.input_path)[0]

    def attempt(self, exclude: Dict[str, str]) -> Outcome:
        folder = tempfile.mkdtemp(dir=self.work)
        path = os.path.join(folder, self.out.name)
        model = self._model()
        # new weights go straight to the output's data file, or are held until the single file is written
        sink = DataSink(os.path.join(folder, self.location), self.location) if self.external else HeldData()
        result = self.options.make_pass().run(model, exclude, base_dir=self.base_dir, sink=sink,
                                              progress=self.options.progress)
        ops = op_counts(model.graph)
        if self.external:
            stream_model(model, path, sink, self.base_dir)
        else:
            canonical.write(model, path, sink.get)
            sink.close()
        return Outcome(path, result, ops, None)  # the model is not kept: onnxruntime reads the file next

    def isolated(self) -> Dict[str, onnx.ModelProto]:
        sink = DataSink(os.path.join(tempfile.mkdtemp(dir=self.work), "scratch.data"), "scratch.data")
        return self.options.make_pass().run(self._model(), isolate=True, base_dir=self.base_dir, sink=sink).layers
