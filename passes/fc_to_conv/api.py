"""The Python API: convert a model (or a file) and get the model and its report back.

    from passes.fc_to_conv import convert, convert_file, Options
    model, report = convert(onnx.load("in.onnx"))
    report = convert_file("in.onnx", "out.onnx", Options(layout="spatial"))

The CLI (__main__.py) maps each flag to one field of Options.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx

from . import inputs as feeds_mod
from . import model_io
from .errors import BadInput
from .graph_pass import PassResult, run_pass
from .report import Report, op_counts
from .shapes import infer
from .revert import revert_bad_layers
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


def _tolerances(result: PassResult, options: Options) -> Tuple[float, float]:
    low = any(c.dtype in ("float16", "bfloat16") for c in result.converted)
    rtol, atol = TOLERANCES["float16" if low else "float32"]
    return (options.rtol if options.rtol is not None else rtol,
            options.atol if options.atol is not None else atol)


def convert(model: onnx.ModelProto, options: Optional[Options] = None) -> Tuple[onnx.ModelProto, Report]:
    """Rewrite the FC layers of a copy of `model` into Convs; verify the copy unless options.verify is False.

    The input model is not modified. Check `report.verified` (or report.verification) before using the result.
    """
    options = options or Options()
    report = Report(layout=options.layout, ops_before=op_counts(model.graph))

    def run(source: onnx.ModelProto, exclude=None, isolate=False):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return copy, run_pass(copy, options.layout, options.mode, exclude, isolate)

    new, result = run(model)
    if options.verify:
        feeds = feeds_mod.make_feeds(model, infer(model), options.input_sets, options.seed,
                                     options.input_shapes, options.inputs)
        rtol, atol = _tolerances(result, options)
        reference = Reference(model, feeds, rtol, atol)
        report.verification = reference.compare(new)
        if not report.verification.numerics_passed and reference.error is None and result.converted:
            new, result, report.verification = revert_bad_layers(
                lambda exclude, isolate: run(model, exclude, isolate), lambda layer: run(layer)[0],
                reference, options.seed)
        ok, why = run_checker(new)
        if ok:
            report.verification.checker = "PASSED"
        else:
            ok_before, _ = run_checker(model)
            report.verification.checker = (f"FAILED: {why}" if ok_before else
                                           f"not clean, as the original is not: {why}")
    report.converted, report.skipped, report.reverted = result.converted, result.skipped, result.reverted
    report.ops_after = op_counts(new.graph)
    report.strict = options.strict
    return new, report


def convert_file(input_path: str, output_path: str, options: Optional[Options] = None,
                 in_place: bool = False) -> Report:
    """Convert the model at `input_path` and write it to `output_path` if it verified (or verify is off).

    Raises BadInput for an unusable input or output path. Nothing is written when verification fails. The output
    may be the input only with in_place=True; the input's external data files are never written to.
    """
    options = options or Options()
    if os.path.realpath(output_path) == os.path.realpath(input_path) and not in_place:
        raise BadInput(f"{output_path}: the output would overwrite the input; choose another output path or pass "
                       "--in-place")
    out_dir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(out_dir):
        raise BadInput(f"{output_path}: the output folder {out_dir} does not exist")
    model, data_files = model_io.load(input_path)
    new, report = convert(model, options)
    report.input, report.output = input_path, output_path
    if not options.verify or report.verified and not (options.strict and report.reverted):
        model_io.save(new, output_path, model_io.needs_external(new, bool(data_files)), keep=data_files)
        report.written = True
    return report
