"""--check-with qnn: the written model on Qualcomm's QNN HTP emulator (the `qnn` extra), run on the verification's
input sets (each set's shapes fixed: HTP needs static shapes) in a child process, and compared with the original
on onnxruntime.

HTP computes a float model in fp16 (enable_htp_fp16_precision, as it deploys one) and a QDQ model in its integers,
so an output passes within fp16's (or the quantized) tolerance, or, when not, within the difference HTP shows on
the original itself: the original runs on HTP too, and a conversion that moves an output no further from
onnxruntime's than HTP moves the original is what the check accepts. The report gives the placement: the nodes
onnxruntime left on its CPU, for the written model and the original.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..toolchains import qnn_htp
from .compare import TOLERANCES, Precision
from .downstream import accept_within, compare_runs
from .verdict import Reference, is_quantized


def check(path: str, reference: Reference, rtol: float, atol: float, result) -> None:
    """Fill `result` (a downstream.Downstream) with the emulator's run of the file at `path`."""
    import onnxruntime_qnn
    result.version = getattr(onnxruntime_qnn, "__version__", "")
    quantized = reference.integer or is_quantized(onnx.load(path, load_external_data=False))
    fp16 = not quantized
    result.how = "HTP emulator, " + ("its integer kernels" if quantized else "fp16 precision")
    f_rtol, f_atol = TOLERANCES[Precision.QUANTIZED if quantized else Precision.FLOAT16]
    rtol, atol = max(rtol, f_rtol), max(atol, f_atol)
    if reference.error:
        result.error = reference.error
        return
    written = qnn_htp.outputs(path, reference.feeds, fp16)
    if written["error"]:
        result.error = f"QNN HTP does not load or run the written model: {written['error']}"
        return
    checks = _compare(written["outputs"], reference, rtol, atol)
    result.placement = f"CPU nodes: {_counts(written['cpu_nodes'])}"
    if not all(c.passed for c in checks) and isinstance(reference.original, str):
        original = qnn_htp.outputs(reference.original, reference.feeds, fp16)
        if original["error"] is None:
            accept_within(checks, _compare(original["outputs"], reference, rtol, atol), "HTP's")
            result.placement += f"; the original's: {_counts(original['cpu_nodes'])}"
    result.outputs = checks


def _compare(runs, reference: Reference, rtol: float, atol: float):
    """HTP's outputs (in the original's dtypes) against onnxruntime's run of the original."""
    typed = [[np.asarray(v).astype(np.asarray(r).dtype) for v, r in zip(got, refs)]
             for got, refs in zip(runs, reference.outputs)]
    return compare_runs(typed, reference.outputs, reference, rtol, atol)


def _counts(cpu) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(cpu.items())) or "none"
