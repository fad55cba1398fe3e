"""Verification: run the original and the rewritten model on onnxruntime's CPU provider and compare every output.

Both run with graph optimizations disabled, so onnxruntime does not rewrite either behind our back. For every output,
over all input sets:

    max_abs  = max |got - ref|
    norm_err = max_abs / max |ref|          (error normalized by the output's magnitude)
    cosine   = <got, ref> / (|got| |ref|)   (in float64, over the flattened output)

An output passes when norm_err <= rtol or max_abs <= atol. Integer and bool outputs must match exactly. Positions
where both models give the same NaN or the same infinity are not a mismatch; they are counted and reported. A
position that is finite in one model and not in the other is a mismatch.

Why a normalized error and not per-element allclose: Gemm/MatMul and Conv are different kernels that accumulate
in a different order. Measured on this machine (scripts/calibrate_tolerances.py), fp32 max_abs grows with K and the
output's size while norm_err stays below about 1e-6; per-element atol=rtol=1e-5 rejects correct rewrites of large
layers. The defaults leave a margin of 10x over the worst measured norm_err and still catch a dropped bias, a
dropped transpose or an ignored alpha by orders of magnitude (tests/test_verify.py).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Union

import numpy as np
import onnx
import onnxruntime as ort

from ..files.model_io import needs_external
from ..progress import Progress
from .checker import CheckerVerdict, Checked, first_line
from .compare import OutputCheck
from .unstable import Masks, compare_outputs, repeats
from .held import Held
from .inputs import describe

@dataclass
class Verification:
    rtol: float
    atol: float
    sets: int = 0
    outputs: List[OutputCheck] = field(default_factory=list)
    error: Optional[str] = None   # the run itself failed
    checker: CheckerVerdict = field(default_factory=CheckerVerdict)
    quantized: bool = False       # a quantized model (is_quantized) ...
    integer: bool = False         # ... run with its integer kernels (_session_options), else simulated in float
    inputs: str = ""              # the inputs used (inputs.describe)
    fallback: bool = False        # they were not the first ones generated: those did not run the original
    # converted layer -> '' or why it failed on its own ({} when none converted); None: skipped, over 1 GB of weights
    layers_alone: Optional[Dict[str, str]] = field(default_factory=dict)

    @property
    def numerics_passed(self) -> bool:
        return self.error is None and all(o.passed for o in self.outputs)

    @property
    def passed(self) -> bool:
        return self.numerics_passed and self.checker.status is not Checked.FAILED

    def failure(self) -> str:
        """One line: what failed."""
        if self.error:
            return self.error
        bad = [o for o in self.outputs if not o.passed]
        return "; ".join(f"output '{o.name}' max_abs={o.max_abs:.3g} norm_err={o.norm_err:.3g}"
                         + (f" ({o.detail})" if o.detail else "") for o in bad) or str(self.checker)


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "QLinearConv", "QGemm", "MatMulInteger",
                 "ConvInteger", "DynamicQuantizeLinear", "QLinearAdd", "QLinearMul"}


def is_quantized(model: onnx.ModelProto) -> bool:
    """A model that quantizes or dequantizes anything in its main graph."""
    return any(n.op_type in QUANTIZED_OPS for n in model.graph.node)


def _session_options(integer: bool = False) -> ort.SessionOptions:
    """Optimizations off, so that onnxruntime does not rewrite either model behind our back; for quantized models
    on at the extended level, where onnxruntime runs QDQ and QOperator layers as the integer kernels they are
    deployed as (without it, DequantizeLinear -> MatMul -> QuantizeLinear is simulated in float, and a rounding
    tie that two float kernels sum in a different order lands on the other side: on a 3-layer BERT of width 192,
    14 of 20 input sets differed by up to 4.5e-2; with integer kernels, none did)."""
    so = ort.SessionOptions()  # (Reference also tries the float simulation when the integer run differs)
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if integer
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 4   # a failure is reported in the verdict, in one line: no log on stderr
    return so


def copy_of(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def to_file(model: onnx.ModelProto, folder: str) -> str:
    """A copy of a model too large for one protobuf, written with external data into `folder`."""
    path = os.path.join(folder, "model.onnx")
    onnx.save_model(copy_of(model), path, save_as_external_data=True, location="model.onnx.data")
    return path


def session(model: Union[onnx.ModelProto, str], workdir: Optional[str] = None,
            integer: bool = False) -> ort.InferenceSession:
    """An onnxruntime CPU session on a model or a model file; a model over 2 GB is first written with external
    data into `workdir`. Weight prepacking is off: it would hold a second copy of every weight. The CPU memory
    arena is off: it keeps the largest activations of every input set, and what it held stays in the process after
    the session is gone, so the converted model's session stacked on the original's (a diffusers UNet, batches 2-4:
    a peak of 18.8 GB with it, 4.5 GB and 9% faster without; onnxruntime alone peaks at 6.4 GB running the
    original once at batch 4). `integer`: see _session_options."""
    so = _session_options(integer)
    so.add_session_config_entry("session.disable_prepacking", "1")
    so.enable_cpu_mem_arena = False
    if not isinstance(model, str):
        if not needs_external(model, False):
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        model = to_file(model, tempfile.mkdtemp(dir=workdir))
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _runs(sess: ort.InferenceSession, feeds, label: str, progress: Progress, failed: List[str]) -> Iterator[list]:
    """The session's outputs on each input set in turn, made as they are asked for; a run that raises ends them,
    with its first line in `failed`. Neither a set's inputs nor its outputs stay referenced here once they are
    handed over (no for-loop over the sets: enumerate's and zip's reused tuples hold the last items while the next
    are made), so that the next run does not find the last one's arrays still in memory."""
    for i in range(len(feeds)):
        feed = feeds[i]
        try:
            outputs = sess.run(None, feed)
        except Exception as exc:
            failed.append(first_line(exc))
            return
        del feed
        progress.update(label, i + 1, len(feeds))
        if i + 1 == len(feeds):   # before the last yield: the caller may not ask past the last set
            progress.end()
        yield outputs
        del outputs


class Reference:
    """The original model's outputs on the input sets, computed once and compared against any number of candidate
    rewrites (the whole conversion, then smaller ones while hunting a bad layer). `original` is a model or the
    path of its file; from a file, onnxruntime reads the weights itself and this process never holds them.

    A quantized model (`integer`) is compared as onnxruntime runs it, with its integer kernels; when that fails,
    also as onnxruntime simulates it in float, and it passes if either does. Each execution rounds some ties its
    own way: measured on correct rewrites, integer kernels left BERTs exact and moved ViT outputs by up to 6
    quantization steps, float simulation the reverse (ViT exact, a 3-layer BERT of width 192 up to 4.5e-2); no
    injected bug passed either (scripts/calibrate_tolerances.py --quantized).

    The input sets and the original's outputs are held as held.py holds them (in files past its limit, under
    `workdir`), and each candidate runs and is compared one input set at a time."""

    def __init__(self, original: Union[onnx.ModelProto, str], names: List[str], feeds: List[Dict[str, np.ndarray]],
                 progress: Optional[Progress] = None, steps: Optional[Dict[str, float]] = None,
                 integer: bool = False, candidates=None, workdir: Optional[str] = None):
        """`candidates`: (description, feeds) pairs (inputs.candidates) tried in order until the original runs on
        one; `feeds` is then ignored. `self.inputs` names the inputs used (inputs.describe); `self.fallback` says
        they were not the first tried."""
        self.feeds, self.names, self.steps, self.integer = feeds, names, steps or {}, integer
        self.workdir = workdir
        self.original = original   # a second runtime may run it too (downstream.py)
        self.progress = progress or Progress(None)
        self.error: Optional[str] = None
        self.inputs, self.fallback = describe(feeds) if feeds else "", False
        self._outputs: Dict[bool, Held] = {}
        self.repeats: List[Masks] = []   # per input set: the outputs the original does not repeat (unstable.py)
        self._failure = ""   # why the original failed on the inputs (not: why it did not load)
        if candidates is None:
            self.outputs = self._run_original(integer)
            return
        tried = []
        for description, feeds in candidates:
            self.feeds, self.error, self._outputs, self._failure = feeds, None, {}, ""
            self.outputs = self._run_original(integer)
            if not self._failure:   # it ran, or it does not even load: no other inputs will help
                self.inputs, self.fallback = description, bool(tried)
                return
            tried.append(description)
        if len(tried) > 1:
            self.error = (f"the original model fails on every input tried ({'; '.join(tried)}), the last with: "
                          f"{self._failure}; give real shapes with --input-shape NAME:DxD or data with --inputs "
                          "FILE.npz")

    def _run_original(self, integer: bool) -> List[list]:
        if integer in self._outputs or self.error:
            return self._outputs.get(integer, [])
        with tempfile.TemporaryDirectory(prefix="fc2conv-verify-") as tmp:
            try:
                sess = session(self.original, tmp, integer)
            except Exception as exc:
                self.error = f"the original model does not load in onnxruntime: {first_line(exc)}"
                return []
            failed: List[str] = []
            outs = self._outputs[integer] = Held(self.workdir)
            outs.extend(_runs(sess, self.feeds, "running the original", self.progress, failed))
            if not failed and self.feeds and integer == self.integer:
                self.repeats = repeats(self.names, outs, lambda i: next(
                    _runs(sess, [self.feeds[i]], "", Progress(None), failed), None))
            if failed:
                self._outputs.pop(integer)
                self._failure = failed[0]
                self.error = (f"the original model fails on the generated inputs: {self._failure}; "
                              "give real shapes with --input-shape NAME:DxD or data with --inputs FILE.npz")
        return self._outputs.get(integer, [])

    def compare(self, rewritten: Union[onnx.ModelProto, str], rtol: float, atol: float) -> Verification:
        result = self._compare(rewritten, rtol, atol, self.integer)
        if self.integer and result.error is None and not result.numerics_passed:
            simulated = self._compare(rewritten, rtol, atol, False)
            if simulated.error is None and simulated.numerics_passed:
                return simulated
        return result

    def _compare(self, rewritten, rtol: float, atol: float, integer: bool) -> Verification:
        result = Verification(rtol, atol, len(self.feeds), quantized=self.integer, integer=integer,
                              inputs=self.inputs, fallback=self.fallback)
        expected = self._run_original(integer)
        if self.error:
            result.error = self.error
            return result
        with tempfile.TemporaryDirectory(prefix="fc2conv-verify-") as tmp:
            try:
                sess = session(rewritten, tmp, integer)
            except Exception as exc:
                result.error = f"the rewritten model does not run in onnxruntime: {first_line(exc)}"
                return result
            failed: List[str] = []
            gots = _runs(sess, self.feeds, "running the converted model", self.progress, failed)
            result.outputs, result.error = compare_outputs(self.names, expected, gots, self.repeats, rtol, atol,
                                                           self.steps)
            del sess, gots
        if failed:
            result.outputs, result.error = [], f"the rewritten model does not run in onnxruntime: {failed[0]}"
        return result
