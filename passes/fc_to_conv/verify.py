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
from enum import Enum
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import onnx
import onnxruntime as ort

from .inputs import describe
from .progress import Progress
from .model_io import needs_external

# (rtol on norm_err, atol on max_abs), chosen from scripts/calibrate_tolerances.py; see the README.
# A quantized model's outputs carry its rounding: a value at a tie that another kernel sums in another order lands
# on the other side, and moves what comes after; 16-bit activations run in float on onnxruntime, through other
# kernels than the original's. Measured (scripts/calibrate_tolerances.py --quantized, 27 models): correct rewrites
# at most 1 quantization step on 8-bit outputs and norm_err 2.4e-4 on float ones; the subtlest injected bug 19
# steps, norm_err 7.7e-2.
TOLERANCES = {"float32": (1e-5, 1e-6), "float16": (5e-3, 1e-4), "quantized": (5e-3, 1e-4)}
# An output that a DequantizeLinear makes also passes within this many of its quantization steps.
QUANTIZED_STEPS = 2


def tolerances(dtypes: Iterable[str], integer: bool, rtol: Optional[float] = None,
               atol: Optional[float] = None) -> Tuple[float, float]:
    """(rtol, atol) for a run: the quantized row when the model runs its integer kernels, else fp16's when any
    converted layer is fp16 or bf16 (`dtypes`), else fp32's; a value the user gave wins."""
    low = any(d in ("float16", "bfloat16") for d in dtypes)
    kind = "quantized" if integer else "float16" if low else "float32"
    default_rtol, default_atol = TOLERANCES[kind]
    return (rtol if rtol is not None else default_rtol, atol if atol is not None else default_atol)


@dataclass
class OutputCheck:
    name: str
    max_abs: float = 0.0
    norm_err: float = 0.0
    cosine: float = 1.0
    nonfinite: int = 0
    passed: bool = True
    detail: str = ""
    step: float = 0.0             # the output's quantization step (its DequantizeLinear's scale), 0 if not quantized

    def line(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        text = (f"{verdict} | output '{self.name}' | max_abs={self.max_abs:.3g} norm_err={self.norm_err:.3g} "
                f"cosine={self.cosine:.9f}")
        if self.step:
            text += f" | {self.max_abs / self.step:.3g} quantization steps"
        if self.nonfinite:
            text += f" | {self.nonfinite} NaN/Inf equal in both"
        return text + (f" | {self.detail}" if self.detail else "")


class Checked(Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"                                    # the written model breaks a rule the original keeps
    NOT_CLEAN = "not clean, as the original is not"      # the original fails the checker too
    NOT_RUN = "not run"


@dataclass
class CheckerVerdict:
    """onnx.checker (full) on the written model; str() is the report's line."""
    status: Checked = Checked.NOT_RUN
    why: str = ""

    def __str__(self) -> str:
        return self.status.value + (f": {self.why}" if self.why else "")


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


def to_file(model: onnx.ModelProto, folder: str) -> str:
    """A copy of a model too large for one protobuf, written with external data into `folder`."""
    path = os.path.join(folder, "model.onnx")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(copy, path, save_as_external_data=True, location="model.onnx.data")
    return path


def session(model: Union[onnx.ModelProto, str], workdir: Optional[str] = None,
            integer: bool = False) -> ort.InferenceSession:
    """An onnxruntime CPU session on a model or a model file; a model over 2 GB is first written with external
    data into `workdir`. Weight prepacking is off: it would hold a second copy of every weight. `integer`: see
    _session_options."""
    so = _session_options(integer)
    so.add_session_config_entry("session.disable_prepacking", "1")
    if not isinstance(model, str):
        if not needs_external(model, False):
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        model = to_file(model, tempfile.mkdtemp(dir=workdir))
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def flatten(value) -> Tuple[np.ndarray, str]:
    """An output as an array, and its structure: a tensor as it is (structure ""); a sequence or a map (onnxruntime
    returns a list, a dict; a ZipMap's output is a list of dicts) as its leaves in order (a map's by sorted key),
    concatenated, with a structure string that names every length and key."""
    if isinstance(value, np.ndarray):
        return value, ""
    if isinstance(value, dict):
        keys = sorted(value, key=repr)
        parts = [flatten(value[k]) for k in keys]
        shape = "{" + ", ".join(f"{k!r}: {p[1] or list(p[0].shape)}" for k, p in zip(keys, parts)) + "}"
    elif isinstance(value, (list, tuple)):
        parts = [flatten(v) for v in value]
        shape = "[" + ", ".join(str(p[1] or list(p[0].shape)) for p in parts) + "]"
    else:
        return np.asarray(value), ""
    arrays = [p[0].reshape(-1) for p in parts]
    return (np.concatenate(arrays) if arrays else np.zeros(0)), shape


def compare_value(name: str, ref, got, rtol: float, atol: float, check: Optional[OutputCheck] = None,
                  step: float = 0.0) -> OutputCheck:
    """compare_output for any output onnxruntime returns: a sequence or map is compared leaf by leaf, within the
    tolerance like a tensor, once its structure (lengths, keys) is found the same."""
    (r, r_shape), (g, g_shape) = flatten(ref), flatten(got)
    if r_shape != g_shape:
        check = check or OutputCheck(name, step=step)
        check.passed, check.detail = False, f"structure {g_shape[:120]} instead of {r_shape[:120]}"
        return check
    return compare_output(name, r, g, rtol, atol, check, step)


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, rtol: float, atol: float,
                   check: Optional[OutputCheck] = None, step: float = 0.0) -> OutputCheck:
    """Fold one input set's output pair into `check` (the running result over all sets). An output quantized
    with `step` also passes within QUANTIZED_STEPS steps."""
    check = check or OutputCheck(name, step=step)
    if ref.shape != got.shape or ref.dtype != got.dtype:
        check.passed = False
        check.detail = f"shape/dtype {list(got.shape)} {got.dtype} instead of {list(ref.shape)} {ref.dtype}"
        return check
    if not (np.issubdtype(ref.dtype, np.floating) or ref.dtype.kind == "V"):
        bad = int(np.count_nonzero(ref != got))
        if bad:
            check.passed, check.detail = False, f"{bad} of {ref.size} values differ"
            if ref.dtype.kind in "iub":   # the figures, not only the count
                diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
                check.max_abs = max(check.max_abs, float(diff.max()))
        return check
    r, g = ref.astype(np.float64), got.astype(np.float64)
    finite_r, finite_g = np.isfinite(r), np.isfinite(g)
    same_nonfinite = ~finite_r & ~finite_g & ((np.isnan(r) & np.isnan(g)) | (r == g))
    mismatch = (finite_r != finite_g) | (~finite_r & ~finite_g & ~same_nonfinite)
    if mismatch.any():
        check.passed = False
        check.detail = f"{int(mismatch.sum())} values are NaN/Inf in one model only"
    check.nonfinite += int(same_nonfinite.sum())
    both = finite_r & finite_g
    r, g = r[both], g[both]
    if r.size:
        max_abs = float(np.max(np.abs(g - r)))
        scale = float(np.max(np.abs(r)))
        norm = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        denom = float(np.linalg.norm(r) * np.linalg.norm(g))
        cosine = float(np.dot(r, g) / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
        check.max_abs = max(check.max_abs, max_abs)
        check.norm_err = max(check.norm_err, norm)
        check.cosine = min(check.cosine, cosine)
        if not (check.norm_err <= rtol or check.max_abs <= atol
                or check.step and check.max_abs <= QUANTIZED_STEPS * check.step * (1 + 1e-6)):
            check.passed = False
    return check


def output_steps(model: onnx.ModelProto) -> Dict[str, float]:
    """The quantization step of each graph output that a per-tensor DequantizeLinear of a constant scale makes."""
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    steps = {}
    for out in model.graph.output:
        node = producer.get(out.name)
        if node is None or node.op_type != "DequantizeLinear" or node.domain not in ("", "ai.onnx"):
            continue
        scale = inits.get(node.input[1]) if len(node.input) > 1 else None
        if scale is not None and scale.data_location != onnx.TensorProto.EXTERNAL:
            value = onnx.numpy_helper.to_array(scale)
            if value.size == 1:
                steps[out.name] = float(value.reshape(-1)[0])
    return steps


def _run_all(sess: ort.InferenceSession, feeds: List[Dict[str, np.ndarray]], label: str,
             progress: Progress) -> List[list]:
    outs = []
    for i, feed in enumerate(feeds):
        outs.append(sess.run(None, feed))
        progress.update(label, i + 1, len(feeds))
    progress.end()
    return outs


class Reference:
    """The original model's outputs on the input sets, computed once and compared against any number of candidate
    rewrites (the whole conversion, then smaller ones while hunting a bad layer). `original` is a model or the
    path of its file; from a file, onnxruntime reads the weights itself and this process never holds them.

    A quantized model (`integer`) is compared as onnxruntime runs it, with its integer kernels; when that fails,
    also as onnxruntime simulates it in float, and it passes if either does. Each execution rounds some ties its
    own way: measured on correct rewrites, integer kernels left BERTs exact and moved ViT outputs by up to 6
    quantization steps, float simulation the reverse (ViT exact, a 3-layer BERT of width 192 up to 4.5e-2); no
    injected bug passed either (scripts/calibrate_tolerances.py --quantized)."""

    def __init__(self, original: Union[onnx.ModelProto, str], names: List[str], feeds: List[Dict[str, np.ndarray]],
                 progress: Optional[Progress] = None, steps: Optional[Dict[str, float]] = None,
                 integer: bool = False, candidates=None):
        """`candidates`: (description, feeds) pairs (inputs.candidates) tried in order until the original runs on
        one; `feeds` is then ignored. `self.inputs` names the inputs used (inputs.describe); `self.fallback` says
        they were not the first tried."""
        self.feeds, self.names, self.steps, self.integer = feeds, names, steps or {}, integer
        self.original = original   # a second runtime may run it too (downstream.py)
        self.progress = progress or Progress(None)
        self.error: Optional[str] = None
        self.inputs, self.fallback = describe(feeds) if feeds else "", False
        self._outputs: Dict[bool, List[list]] = {}
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
            try:
                self._outputs[integer] = _run_all(sess, self.feeds, "running the original", self.progress)
            except Exception as exc:
                self._failure = first_line(exc)
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
                gots = _run_all(sess, self.feeds, "running the converted model", self.progress)
            except Exception as exc:
                result.error = f"the rewritten model does not run in onnxruntime: {first_line(exc)}"
                return result
            del sess
        checks: Dict[str, OutputCheck] = {}
        for ref, got in zip(expected, gots):
            for name, r, g in zip(self.names, ref, got):
                checks[name] = compare_value(name, r, g, rtol, atol, checks.get(name), self.steps.get(name, 0.0))
        result.outputs = [checks[n] for n in self.names]
        return result


def run_checker(model: Union[onnx.ModelProto, str]) -> Tuple[bool, str]:
    """onnx.checker with full_check (which includes strict shape inference), on a model or a model file."""
    try:
        if isinstance(model, str) or not needs_external(model, False):
            onnx.checker.check_model(model, full_check=True)
        else:
            with tempfile.TemporaryDirectory(prefix="fc2conv-check-") as tmp:
                onnx.checker.check_model(to_file(model, tmp), full_check=True)
        return True, ""
    except Exception as exc:
        return False, first_line(exc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
