"""The Python API: convert a model (or a file) and get the model and its report back.

    from passes.fc_to_conv import convert, convert_file, Options
    model, report = convert(onnx.load("in.onnx"))
    report = convert_file("in.onnx", "out.onnx", Options(layout="spatial"))

The CLI (__main__.py) maps each flag to one field of Options.
"""
from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import onnx

from . import inputs as feeds_mod
from . import model_io
from .errors import BadInput
from . import canonical, downstream
from .external import DataSink, stream_model
from .graph_pass import PassResult, run_pass
from .report import Report, op_counts
from .shapes import infer, light_model
from .revert import Attempt, revert_bad_layers
from .sinks import HeldData
from .verify import TOLERANCES, Reference, run_checker


@dataclass
class Options:
    layout: str = "spatial"             # "spatial" or "batch": see layout.py
    mode: str = "full"                  # "full": classifier heads get full-kernel Convs; "1x1": 1x1 only
    verify: bool = True                 # run original and result on onnxruntime and compare every output
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)   # fixed shapes for the verification
    inputs: Optional[Dict[str, np.ndarray]] = None                      # the user's own input arrays
    input_sets: int = 3
    seed: int = 0
    rtol: Optional[float] = None        # None: per-dtype default from verify.TOLERANCES
    atol: Optional[float] = None
    strict: bool = False                # a reverted layer fails the run instead of staying unconverted
    check_with: Optional[str] = None    # "openvino": a second runtime reads, compiles and runs the result too


def _tolerances(result: PassResult, options: Options) -> Tuple[float, float]:
    low = any(c.dtype in ("float16", "bfloat16") for c in result.converted)
    rtol, atol = TOLERANCES["float16" if low else "float32"]
    return (options.rtol if options.rtol is not None else rtol,
            options.atol if options.atol is not None else atol)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _convert(info: onnx.ModelProto, original: Union[onnx.ModelProto, str], attempt: Attempt,
             isolated: Callable[[], Dict[str, onnx.ModelProto]], options: Options) -> Tuple[Any, onnx.ModelProto, Report]:
    """The pass, the verification and the reverts, for a model in memory or on disk.

    info: the original's structure (weights not needed); original: what onnxruntime runs as the reference (the
    model, or its file); attempt: see Attempt; isolated(): each converted layer cut out on its own.
    """
    downstream.require(options.check_with)
    report = Report(layout=options.layout, ops_before=op_counts(info.graph))
    reference = None
    if options.verify or options.check_with:
        feeds = feeds_mod.make_feeds(info, infer(info), options.input_sets, options.seed, options.input_shapes,
                                     options.inputs)
        reference = Reference(original, [o.name for o in info.graph.output], feeds)  # before the weights load
    outcome = attempt({})
    if options.verify:
        rtol, atol = _tolerances(outcome[1], options)
        report.verification = reference.compare(outcome[0], rtol, atol)
        if not report.verification.numerics_passed and reference.error is None and outcome[1].converted:
            convert_layer = lambda layer: _run_copy(layer, options)
            outcome, report.verification = revert_bad_layers(attempt, isolated(), convert_layer, reference, rtol,
                                                             atol, options.seed)
        ok, why = run_checker(outcome[0])
        if ok:
            report.verification.checker = "PASSED"
        else:
            ok_before, _ = run_checker(original)
            report.verification.checker = (f"FAILED: {why}" if ok_before else
                                           f"not clean, as the original is not: {why}")
    target, result, report.ops_after, model = outcome
    if options.check_with and (report.verification is None or report.verification.passed):
        report.downstream = downstream.check(options.check_with, target, reference, *_tolerances(result, options))
    report.converted, report.skipped, report.reverted = result.converted, result.skipped, result.reverted
    report.strict = options.strict
    return target, model, report


def _run_copy(model: onnx.ModelProto, options: Options) -> onnx.ModelProto:
    copy = _copy(model)
    run_pass(copy, options.layout, options.mode)
    return copy


def convert(model: onnx.ModelProto, options: Optional[Options] = None) -> Tuple[onnx.ModelProto, Report]:
    """Rewrite the FC layers of a copy of `model` into Convs; verify the copy unless options.verify is False.

    The input model is not modified. Check `report.verified` (or report.verification) before using the result.
    """
    options = options or Options()

    def attempt(exclude):
        copy = _copy(model)
        result = run_pass(copy, options.layout, options.mode, exclude)
        return copy, result, op_counts(copy.graph), copy

    isolated = lambda: run_pass(_copy(model), options.layout, options.mode, isolate=True).layers
    _, new, report = _convert(model, model, attempt, isolated, options)
    return new, report


def convert_file(input_path: str, output_path: str, options: Optional[Options] = None,
                 in_place: bool = False) -> Report:
    """Convert the model at `input_path` and write it to `output_path` if it verified (or verify is off).

    Raises BadInput for an unusable input or output path. Nothing is written when verification fails. The output
    may be the input only with in_place=True; the input's external data files are never written to.

    Memory: onnxruntime runs the original from its file before this process loads anything of the weights. The
    pass then puts each new weight where it will be written as it is made: the output's data file for a model
    with external data (external.py; its own weights are read from their file one at a time and copied over in
    chunks), or an array held outside protobuf for a single-file model, which canonical.py then writes exactly as
    onnx.save would, initializer by initializer. Every attempt is
    written to a temporary folder beside the output, verified from there, and the one kept is renamed into place.
    """
    options = options or Options()
    if os.path.realpath(output_path) == os.path.realpath(input_path) and not in_place:
        raise BadInput(f"{output_path}: the output would overwrite the input; choose another output path or pass "
                       "--in-place")
    out = Path(output_path)
    out_dir = out.parent.resolve()
    if not out_dir.is_dir():
        raise BadInput(f"{output_path}: the output folder {out_dir} does not exist")
    info, data_files = model_io.open_model(input_path)
    base_dir = str(Path(input_path).resolve().parent)
    location = model_io.data_location(out, data_files)
    external = model_io.needs_external(info, bool(data_files))
    first = [info]

    def fresh() -> onnx.ModelProto:  # the first attempt edits the model already open; later ones reopen the file
        return first.pop() if first else model_io.open_model(input_path)[0]

    work = tempfile.mkdtemp(prefix=".fc2conv-", dir=out_dir)
    try:
        def attempt(exclude):
            folder = tempfile.mkdtemp(dir=work)
            path = os.path.join(folder, out.name)
            model = fresh()
            # new weights go straight to the output's data file, or are held until the single file is written
            sink = DataSink(os.path.join(folder, location), location) if external else HeldData()
            result = run_pass(model, options.layout, options.mode, exclude, base_dir=base_dir, sink=sink)
            ops = op_counts(model.graph)
            if external:
                stream_model(model, path, sink, base_dir)
            else:
                canonical.write(model, path, sink.get)
                sink.close()
            return path, result, ops, None  # the model is not kept: onnxruntime reads the file next

        def isolated():
            sink = DataSink(os.path.join(tempfile.mkdtemp(dir=work), "scratch.data"), "scratch.data")
            return run_pass(fresh(), options.layout, options.mode, isolate=True, base_dir=base_dir, sink=sink).layers

        structure = light_model(info)
        del info  # fresh() holds it until the first attempt, which consumes it
        target, _, report = _convert(structure, input_path, attempt, isolated, options)
        report.input, report.output = input_path, output_path
        report.model_bytes, report.peak_rss_bytes = model_io.size_on_disk(input_path, data_files), peak_rss()
        if report.acceptable:
            model_io.move_into_place(os.path.dirname(target), out)
            report.written = True
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
