"""The Python API: convert a model (or a file) and get the model and its report back.

    from passes.fc_to_conv import convert, convert_file, Options
    model, report = convert(onnx.load("in.onnx"))
    report = convert_file("in.onnx", "out.onnx", Options(layout="spatial"))

The CLI (__main__.py) maps each flag to one field of Options.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple, Union

import numpy as np
import onnx

from .errors import BadInput
from .files import model_io
from .files import canonical
from .files.external import DataSink, stream_model
from .files.sinks import HeldData
from .files.validate import validate
from .graph.shapes import infer, light_model
from .graph_pass import FcToConvPass
from .memory import peak_rss
from .progress import Progress
from .report import Report, op_counts
from .result import PassResult
from .rules import rules
from .verify import inputs as feeds_mod
from .verify import downstream
from .verify.compare import output_steps, tolerances
from .verify.revert import Outcome, check_layer, revert_bad_layers, wrong_alone
from .verify.verdict import Checked, CheckerVerdict, Reference, is_quantized, run_checker


@dataclass
class Options:
    layout: str = "spatial"             # "spatial" or "batch": see layout.py
    mode: str = "full"                  # "full": classifier heads get full-kernel Convs; "1x1": 1x1 only
    verify: bool = True                 # run original and result on onnxruntime and compare every output
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)   # fixed shapes for the verification
    inputs: Optional[Dict[str, np.ndarray]] = None                      # the user's own input arrays
    input_sets: int = 3
    seed: int = 0
    rtol: Optional[float] = None        # None: per-dtype default from compare.TOLERANCES
    atol: Optional[float] = None
    strict: bool = False                # a reverted layer fails the run instead of staying unconverted
    check_with: Optional[str] = None    # "openvino": a second runtime reads, compiles and runs the result too
    progress: Optional[Progress] = None  # a progress line for long runs (the CLI's, on a terminal)
    convert_dynamic: bool = False       # MatMulInteger -> ConvInteger too (slow on onnxruntime's CPU)
    target: str = "onnxruntime"         # the runtime the output is for: the graph shape it runs fastest (targets/targets.py)

    def make_pass(self) -> FcToConvPass:
        return FcToConvPass(self.layout, self.mode, rules(self.convert_dynamic), self.target)


def _tolerances(result: PassResult, options: Options, reference: Optional[Reference] = None) -> Tuple[float, float]:
    return tolerances([c.dtype for c in result.converted], reference is not None and reference.integer,
                      options.rtol, options.atol)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


class _InMemory:
    """Attempts on copies of a model in memory."""

    def __init__(self, model: onnx.ModelProto, options: Options):
        self.model, self.options = model, options

    def attempt(self, exclude: Dict[str, str]) -> Outcome:
        copy = _copy(self.model)
        result = self.options.make_pass().run(copy, exclude, progress=self.options.progress)
        return Outcome(copy, result, op_counts(copy.graph), copy)

    def isolated(self) -> Dict[str, onnx.ModelProto]:
        return self.options.make_pass().run(_copy(self.model), isolate=True).layers


class _OnDisk:
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


def _reference(info: onnx.ModelProto, original: Union[onnx.ModelProto, str], options: Options) -> Reference:
    candidates = feeds_mod.candidates(info, infer(info), options.input_sets, options.seed, options.input_shapes,
                                      options.inputs)
    return Reference(original, [o.name for o in info.graph.output], [], options.progress, output_steps(info),
                     is_quantized(info), candidates)


LAYER_CHECK_MAX_BYTES = 2**30   # above this much weight, the layers are checked on their own only after a failure


def _verify(job, first: Outcome, original, reference: Reference, options: Options, weight_bytes: int):
    """The verification of `first`, reverting the layers that make it wrong: the outcome kept and its verdict.

    Each converted layer is also checked on its own (isolate.py: cut out, on seeded random activations of its real
    input shape), so that a wrong rewrite is caught where the model's inputs barely reach it. That takes a second
    pass and holds every layer's weight: a model with more than LAYER_CHECK_MAX_BYTES of weights is checked on the
    whole only, unless it fails there (the verdict says so)."""
    rtol, atol = _tolerances(first.result, options, reference)
    outcome, verdict = first, reference.compare(first.target, rtol, atol)

    def convert_layer(layer: onnx.ModelProto) -> onnx.ModelProto:
        copy = _copy(layer)
        options.make_pass().run(copy)
        return copy
    layers, alone = None, {}
    if reference.error is None and first.result.converted:
        if weight_bytes <= LAYER_CHECK_MAX_BYTES:
            layers = job.isolated()
            alone = {key: check_layer(layer, convert_layer, rtol, atol, options.seed) for key, layer in layers.items()}
        if not verdict.numerics_passed or any(map(wrong_alone, alone.values())):
            outcome, verdict = revert_bad_layers(job.attempt, layers if layers is not None else job.isolated(),
                                                 convert_layer, reference, rtol, atol, options.seed, alone)
    name_of = {c.key: c.name for c in first.result.converted}
    skipped = reference.error is None and first.result.converted and layers is None
    verdict.layers_alone = None if skipped else {name_of.get(k, k): why for k, why in alone.items()}
    ok, why = run_checker(outcome.target)
    verdict.checker = CheckerVerdict(Checked.PASSED) if ok else \
        CheckerVerdict(Checked.FAILED if run_checker(original)[0] else Checked.NOT_CLEAN, why)
    return outcome, verdict


def _convert(info: onnx.ModelProto, original: Union[onnx.ModelProto, str], job, options: Options
             ) -> Tuple[Outcome, Report]:
    """The pass, the verification and the reverts, for a model in memory or on disk.

    info: the original's structure (weights not needed); original: what onnxruntime runs as the reference (the
    model, or its file); job: _InMemory or _OnDisk, which makes the attempts.
    """
    downstream.require(options.check_with)
    report = Report(layout=options.layout, target=options.target, ops_before=op_counts(info.graph), strict=options.strict)
    reference = _reference(info, original, options) if options.verify or options.check_with else None
    outcome = job.attempt({})  # after the reference ran: onnxruntime has let go of the original's weights
    if options.verify:
        outcome, report.verification = _verify(job, outcome, original, reference, options,
                                               model_io.tensor_bytes(info.graph))
    result = outcome.result
    if options.check_with and (report.verification is None or report.verification.passed):
        report.downstream = downstream.check(options.check_with, outcome.target, reference,
                                             *_tolerances(result, options, reference))
    report.ops_after = outcome.ops_after
    report.converted, report.skipped, report.reverted = result.converted, result.skipped, result.reverted
    return outcome, report


def convert(model: onnx.ModelProto, options: Optional[Options] = None) -> Tuple[onnx.ModelProto, Report]:
    """Rewrite the FC layers of a copy of `model` into Convs; verify the copy unless options.verify is False.

    The input model is not modified. Check `report.verified` (or report.verification) before using the result.
    Raises BadInput for a model the CLI refuses too (validate.py: nodes out of order, a cycle, an undefined input,
    an IR version or opset newer than onnx knows, a malformed tensor).
    """
    options = options or Options()
    validate(model, "<model>")
    outcome, report = _convert(model, model, _InMemory(model, options), options)
    return outcome.model, report


def convert_file(input_path: str, output_path: str, options: Optional[Options] = None,
                 in_place: bool = False) -> Report:
    """Convert the model at `input_path` and write it to `output_path` if it verified (or verify is off).

    Raises BadInput for an unusable input or output path. Nothing is written when verification fails. The output
    may be the input only with in_place=True; the input's external data files are never written to.

    Memory: onnxruntime runs the original from its file before this process loads anything of the weights. The
    pass then puts each new weight where it will be written as it is made: the output's data file for a model
    with external data (external.py; its own weights are read from their file one at a time and copied over in
    chunks), or an array held outside protobuf for a single-file model, which canonical.py then writes exactly as
    onnx.save would, initializer by initializer. Every attempt is written to a temporary folder beside the output,
    verified from there, and the one kept is renamed into place.
    """
    options = options or Options()
    if os.path.realpath(output_path) == os.path.realpath(input_path) and not in_place:
        raise BadInput(f"{output_path}: the output would overwrite the input; choose another output path or pass "
                       "--in-place")
    out = Path(output_path)
    if not out.parent.resolve().is_dir():
        raise BadInput(f"{output_path}: the output folder {out.parent.resolve()} does not exist")
    opened, data_files = model_io.open_model(input_path)
    work = tempfile.mkdtemp(prefix=".fc2conv-", dir=out.parent.resolve())
    try:
        job = _OnDisk(input_path, out, opened, data_files, work, options)
        structure = light_model(opened)
        del opened  # the job holds it until the first attempt, which consumes it
        outcome, report = _convert(structure, input_path, job, options)
        report.input, report.output = input_path, output_path
        report.model_bytes, report.peak_rss_bytes = model_io.size_on_disk(input_path, data_files), peak_rss()
        if report.acceptable:
            model_io.move_into_place(os.path.dirname(outcome.target), out)
            report.written = True
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
