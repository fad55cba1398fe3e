"""Comparing one output of the original with the rewritten model's: the measures, the verdict per output, and the
tolerances they are held to (the verify module's docstring says why a normalized error).

    max_abs  = max |got - ref|
    norm_err = max_abs / max |ref|          (error normalized by the output's magnitude)
    cosine   = <got, ref> / (|got| |ref|)   (in float64, over the flattened output)

A sequence or map output is compared leaf by leaf once its structure matches; integer and bool outputs exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import onnx

# (rtol on norm_err, atol on max_abs), chosen from scripts/calibrate_tolerances.py; see the README.
# A quantized model's outputs carry its rounding: a value at a tie that another kernel sums in another order lands
# on the other side, and moves what comes after; 16-bit activations run in float on onnxruntime, through other
# kernels than the original's. Measured (scripts/calibrate_tolerances.py --quantized, 27 models): correct rewrites
# at most 1 quantization step on 8-bit outputs and norm_err 2.4e-4 on float ones; the subtlest injected bug 19
# steps, norm_err 7.7e-2.
class Precision(str, Enum):
    """What a run computes in, which sets its tolerances (a str: TOLERANCES["float16"] reads as well)."""
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    QUANTIZED = "quantized"


TOLERANCES = {Precision.FLOAT32: (1e-5, 1e-6), Precision.FLOAT16: (5e-3, 1e-4), Precision.QUANTIZED: (5e-3, 1e-4)}
# An output that a DequantizeLinear makes also passes within this many of its quantization steps.
QUANTIZED_STEPS = 2


def tolerances(dtypes: Iterable[str], integer: bool, rtol: Optional[float] = None,
               atol: Optional[float] = None) -> Tuple[float, float]:
    """(rtol, atol) for a run: the quantized row when the model runs its integer kernels, else fp16's when any
    converted layer is fp16 or bf16 (`dtypes`), else fp32's; a value the user gave wins."""
    low = any(d in ("float16", "bfloat16") for d in dtypes)
    precision = Precision.QUANTIZED if integer else Precision.FLOAT16 if low else Precision.FLOAT32
    default_rtol, default_atol = TOLERANCES[precision]
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
    stats = _float_stats(ref.reshape(-1), got.reshape(-1))
    if stats.mismatch:
        check.passed = False
        check.detail = f"{stats.mismatch} values are NaN/Inf in one model only"
    check.nonfinite += stats.same_nonfinite
    if stats.size:
        max_abs = stats.max_abs
        norm = max_abs / stats.scale if stats.scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        denom = float(np.sqrt(stats.ref_sq) * np.sqrt(stats.got_sq))
        cosine = float(stats.dot / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
        check.max_abs = max(check.max_abs, max_abs)
        check.norm_err = max(check.norm_err, norm)
        check.cosine = min(check.cosine, cosine)
        if not (check.norm_err <= rtol or check.max_abs <= atol
                or check.step and check.max_abs <= QUANTIZED_STEPS * check.step * (1 + 1e-6)):
            check.passed = False
    return check


CHUNK = 2**20   # values compared at a time: the float64 copies of a chunk, not of a whole large output


@dataclass
class _Stats:
    size: int = 0              # values finite in both
    mismatch: int = 0          # finite in one model only, or a different NaN/Inf
    same_nonfinite: int = 0
    max_abs: float = 0.0
    scale: float = 0.0         # max |ref|
    ref_sq: float = 0.0        # sum ref^2, sum got^2, sum ref*got: the cosine's terms
    got_sq: float = 0.0
    dot: float = 0.0


def _float_stats(ref: np.ndarray, got: np.ndarray) -> _Stats:
    """The module docstring's measures over two flat float outputs, in float64, a CHUNK at a time."""
    stats = _Stats()
    for start in range(0, ref.size, CHUNK):
        r = ref[start:start + CHUNK].astype(np.float64)
        g = got[start:start + CHUNK].astype(np.float64)
        finite_r, finite_g = np.isfinite(r), np.isfinite(g)
        same_nonfinite = ~finite_r & ~finite_g & ((np.isnan(r) & np.isnan(g)) | (r == g))
        stats.mismatch += int(((finite_r != finite_g) | (~finite_r & ~finite_g & ~same_nonfinite)).sum())
        stats.same_nonfinite += int(same_nonfinite.sum())
        both = finite_r & finite_g
        r, g = r[both], g[both]
        if r.size:
            stats.size += r.size
            stats.max_abs = max(stats.max_abs, float(np.max(np.abs(g - r))))
            stats.scale = max(stats.scale, float(np.max(np.abs(r))))
            stats.ref_sq += float(np.dot(r, r))
            stats.got_sq += float(np.dot(g, g))
            stats.dot += float(np.dot(r, g))
    return stats


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
