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
from pathlib import Path
from typing import Optional, Tuple, Union

import onnx

from .attempts import InMemory, OnDisk
from .errors import BadInput
from .files import model_io
from .files.validate import validate
from .graph.shapes import light_model
from .memory import peak_rss
from .options import Options
from .report import Report, op_counts
from . import decisions, toolchains
from .tune import Tuner
from .verify import downstream, policy
from .verify.revert import Outcome


def _convert(info: onnx.ModelProto, original: Union[onnx.ModelProto, str], job, options: Options
             ) -> Tuple[Outcome, Report]:
    """The pass, the verification and the reverts, for a model in memory or on disk.

    info: the original's structure (weights not needed); original: what onnxruntime runs as the reference (the
    model, or its file); job: attempts.InMemory or attempts.OnDisk, which makes the attempts.
    """
    downstream.require(options.check_with)
    toolchain = None
    if options.tune:   # refused before anything runs when it is missing; the same one measures below
        toolchain = toolchains.require(options.target, options.tune_threads, options.input_shapes,
                                       options.toolchain_python)
    elif options.decisions:
        decisions.read(options.decisions)   # a bad file is refused before anything runs
    report = Report(layout=options.layout, target=options.target, ops_before=op_counts(info.graph), strict=options.strict)
    checked = options.verify or options.check_with
    reference = policy.reference(info, original, options, job.work) if checked else None
    outcome = job.attempt({})  # after the reference ran: onnxruntime has let go of the original's weights
    if options.verify:
        outcome, report.verification = policy.verify(job, outcome, original, reference, options,
                                               model_io.tensor_bytes(info.graph))
    if (options.tune or options.decisions) and (report.verification is None or report.verification.passed):
        outcome = _tuned(job, outcome, original, reference, options, report, toolchain)
    result = outcome.result
    if options.check_with and (report.verification is None or report.verification.passed):
        report.downstream = downstream.check(options.check_with, outcome.target, reference,
                                             *policy.run_tolerances(result, options, reference))
    report.ops_after = outcome.ops_after
    report.converted, report.skipped, report.reverted = result.converted, result.skipped, result.reverted
    report.tuned = result.tuned
    return outcome, report


def _tuned(job, outcome: Outcome, original, reference, options: Options, report: Report, toolchain) -> Outcome:
    """--tune (measure, tune.py) and --decisions (write what it chose, or apply a file's choices unmeasured)."""
    names = {c.key: c.name for c in outcome.result.converted}   # every layer the verified attempt converted
    if options.tune:
        outcome, report.tuning = Tuner(toolchain, job.attempt, options.tune_rounds).tune(outcome, original)
        kept = report.tuning.kept
        if options.decisions:
            decisions.write(options.decisions, report.tuning, names)
    else:
        kept = decisions.exclusions(decisions.read(options.decisions), names, options.decisions)
        outcome = job.attempt(kept) if kept else outcome
    if options.verify and kept:   # another graph: its outputs compared as the first attempt's were
        again = reference.compare(outcome.target, *policy.run_tolerances(outcome.result, options, reference))
        report.verification.outputs, report.verification.error = again.outputs, again.error
        alone, written = report.verification.layers_alone, {c.name for c in outcome.result.converted}
        if alone:   # the layers kept as FC are not in the written model: their check on their own says nothing of it
            report.verification.layers_alone = {name: why for name, why in alone.items() if name in written}
    return outcome


def convert(model: onnx.ModelProto, options: Optional[Options] = None) -> Tuple[onnx.ModelProto, Report]:
    """Rewrite the FC layers of a copy of `model` into Convs; verify the copy unless options.verify is False.

    The input model is not modified. Check `report.verified` (or report.verification) before using the result.
    Raises BadInput for a model the CLI refuses too (validate.py: nodes out of order, a cycle, an undefined input,
    an IR version or opset newer than onnx knows, a malformed tensor).
    """
    options = options or Options()
    validate(model, "<model>")
    outcome, report = _convert(model, model, InMemory(model, options), options)
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
        job = OnDisk(input_path, out, opened, data_files, work, options)
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
