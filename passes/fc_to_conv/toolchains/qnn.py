"""Qualcomm's QNN HTP emulator (the `qnn` extra, onnxruntime-qnn) as a toolchain to measure on: HTP cycles of one
inference summed over the model's QNN partitions, each model the median of `rounds` sessions interleaved with the
others (qnn_htp.py, run in a child process: an EP that aborts ends the child, and its models read "does not load").
Float models run in fp16 (enable_htp_fp16_precision), as HTP deploys them; quantized ones as they are. HTP needs
static shapes: the dynamic dims of the inputs --input-shape names are fixed as it says (a decoder tuned at 16
tokens, not at 1), every other dynamic dim to 1. A model that onnxruntime leaves partly on the CPU costs its HTP
cycles only: the CPU nodes are counted in qnn_htp.py's result, not in the cost.
"""
from __future__ import annotations

import importlib.util
from typing import Dict, List, Optional

from . import Cost
from . import qnn_htp

UNIT = "cycles"


class QnnHtp:
    name = "qnn"
    noise = 0.10            # the emulator's sessions vary widely: differences under 10% are not decided on
    python: Optional[str] = None            # --toolchain-python: refused (the emulator runs in fc2conv's own)
    shapes: Dict[str, List[int]] = {}       # --input-shape: input name -> dims

    def missing(self) -> str:
        if self.python:
            return ("--toolchain-python: the qnn toolchain runs in fc2conv's own interpreter (pip install -e "
                    "\".[qnn]\" there)")
        if importlib.util.find_spec("onnxruntime_qnn") is None:
            return "the qnn toolchain needs Qualcomm's HTP emulator: pip install -e \".[qnn]\" (onnxruntime-qnn)"
        return ""

    def configured(self, threads: int, shapes, python: Optional[str] = None) -> "QnnHtp":
        """The emulator counts cycles (no threads); the dims of the inputs `shapes` gives (--input-shape) are
        fixed as it says them, every other dynamic dim to 1 (qnn_htp.py)."""
        if python is None and not shapes:
            return self
        other = QnnHtp()
        other.python, other.shapes = python, dict(shapes or {})
        return other

    def measure(self, paths: List[str], rounds: int = 5) -> List[Cost]:
        import onnx
        from ..verify.verdict import is_quantized
        model = onnx.load(paths[0], load_external_data=False)
        found = qnn_htp.measure(paths, fp16=not is_quantized(model), dims=named_dims(model, self.shapes) or None,
                                rounds=rounds)
        return [Cost(r["cycles"] if not r["error"] else None, UNIT,
                     [c for c in r.get("cycles_per_session", []) if c], r["error"]) for r in found]


TOOLCHAIN = QnnHtp()


def named_dims(model, shapes: Dict[str, List[int]]) -> Dict[str, int]:
    """The named dynamic dims of `model`'s inputs that `shapes` (input name -> dims) fixes: dim_param -> size.
    The emulator fixes dims by name, so a dim two inputs share (batch, sequence) takes one size."""
    out: Dict[str, int] = {}
    for value in model.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes.get(value.name, [])):
            if dim.dim_param:
                out.setdefault(dim.dim_param, size)
    return out
