"""A second reader of the written model: a compiler users deploy with reads the file as written, compiles it, runs
it on the verification inputs, and each output is compared with the original's on onnxruntime.

onnxruntime alone proves the numbers; it does not prove that another parser accepts the file, or that another
compiler lowers the Convs and layout nodes correctly. `--check-with openvino` asks OpenVINO (an optional extra:
`pip install -e ".[openvino]"`): `Core.read_model` on the written file, `compile_model` for CPU with
INFERENCE_PRECISION_HINT f32 (so that its CPU plugin does not compute in bf16 where the processor has it), then
one inference per input set. The comparison and the tolerances are verdict.py's and compare.py's.
"""
from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import onnx

from ..errors import BadInput
from .compare import OutputCheck, compare_output
from .verdict import Reference, first_line, to_file

CHECKERS = ("openvino", "qnn")
EXTRA = {"openvino": ("openvino", "--check-with openvino needs the openvino package: pip install -e \".[openvino]\" "
                                  "(or pip install openvino)"),
         "qnn": ("onnxruntime_qnn", "--check-with qnn needs Qualcomm's HTP emulator: pip install -e \".[qnn]\" "
                                    "(onnxruntime-qnn)")}


@dataclass
class Downstream:
    """The outcome of one downstream check."""
    tool: str
    version: str = ""
    outputs: List[OutputCheck] = field(default_factory=list)
    error: Optional[str] = None
    against: str = "against onnxruntime's run of the original"
    how: str = "CPU, f32 precision"
    placement: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None and all(o.passed for o in self.outputs)

    def lines(self) -> List[str]:
        head = f"{self.tool} {self.version} {self.how}: read, compile, run on the same inputs, {self.against}"
        body = [f"  FAILED | {self.error}"] if self.error else []
        body += [f"  placement: {self.placement}"] if self.placement else []
        body += ["  " + o.line() for o in self.outputs]
        return [head] + body + ["  PASSED" if self.passed else "  FAILED: the model was not written"]


def require(tool: Optional[str]) -> None:
    """Refuse (exit 2) a check whose tool is unknown or not installed, before any work is done."""
    if tool is None:
        return
    if tool not in CHECKERS:
        raise BadInput(f"--check-with {tool}: unknown; choose one of {', '.join(CHECKERS)}")
    module, missing = EXTRA[tool]
    if importlib.util.find_spec(module) is None:
        raise BadInput(missing) from None


def check(tool: str, model: Union[onnx.ModelProto, str], reference: Reference, rtol: float,
          atol: float) -> Downstream:
    """Run `model` (the written file, or a model in memory) with `tool` and compare with `reference`.

    When OpenVINO's outputs differ from onnxruntime's run of the original, OpenVINO runs the original too: a
    quantized model's integer arithmetic (rounding, saturation) differs between the two runtimes, and what counts
    is that the converted model does on OpenVINO what the original does on OpenVINO. An output then passes within
    the tolerance, or within the difference the two runtimes show on the original itself (measured: 0.09 on a
    16-bit BERT, 0.5 on an 8-bit ViT): the conversion moves it no further than changing runtime does. The
    report's lines say which comparison was made."""
    with tempfile.TemporaryDirectory(prefix="fc2conv-downstream-") as tmp:
        path = model if isinstance(model, str) else to_file(model, tmp)
        if tool == "qnn":
            from . import downstream_qnn
            result = Downstream("QNN")
            downstream_qnn.check(path, reference, rtol, atol, result)
            return result
        result, _ = _openvino(path, reference.outputs, reference, rtol, atol)
        if result.passed or result.error or reference.original is None:
            return result
        original = reference.original if isinstance(reference.original, str) else \
            to_file(reference.original, tempfile.mkdtemp(dir=tmp))
        baseline, values = _openvino(original, reference.outputs, reference, rtol, atol, "original")
        if baseline.error:
            return result
        own, _ = _openvino(path, values, reference, rtol, atol)
        accept_within(own.outputs, baseline.outputs, "the runtimes'")
        worst = max((o.norm_err for o in baseline.outputs), default=0.0)
        own.against = (f"against OpenVINO's own run of the original (which differs from onnxruntime's by "
                       f"norm_err {worst:.3g})")
        return own


def _openvino(path: str, expected: List[list], reference: Reference, rtol: float, atol: float,
              which: str = "written") -> Tuple[Downstream, List[list]]:
    """OpenVINO's run of the model at `path` compared with `expected`, and its outputs per input set."""
    import openvino as ov
    result, outputs = Downstream("OpenVINO", ov.__version__.split("-")[0]), []
    if reference.error:
        result.error = reference.error
        return result, outputs
    core = ov.Core()
    try:
        model = core.read_model(path)
    except Exception as exc:
        result.error = f"OpenVINO cannot read the {which} model: {first_line(exc)}"
        return result, outputs
    try:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        ports = {name: port for port in compiled.outputs for name in port.get_names()}
        for feed, refs in zip(reference.feeds, expected):
            got = request.infer(feed)
            outputs.append([_as(np.asarray(got[ports[name]]).copy(), np.asarray(ref))
                            for name, ref in zip(reference.names, refs)])
    except Exception as exc:
        result.error = f"OpenVINO cannot compile or run the {which} model: {first_line(exc)}"
        return result, outputs
    result.outputs = compare_runs(outputs, expected, reference, rtol, atol)
    return result, outputs


def compare_runs(runs: List[list], expected: List[list], reference: Reference, rtol: float,
                 atol: float) -> List[OutputCheck]:
    """Each output over the input sets: runs[i] (a value per output) against expected[i], in reference.names."""
    checks: Dict[str, OutputCheck] = {}
    for got, refs in zip(runs, expected):
        for name, value, ref in zip(reference.names, got, refs):
            checks[name] = compare_output(name, np.asarray(ref), value, rtol, atol, checks.get(name),
                                          reference.steps.get(name, 0.0))
    return [checks[n] for n in reference.names]


def accept_within(own: List[OutputCheck], floor: List[OutputCheck], whose: str) -> None:
    """Pass each failed output of the converted model that is no further from onnxruntime's original than the
    runtime's run of the original itself (`floor`): the conversion moved it no further than the runtime does."""
    for mine, base in zip(own, floor):
        if not mine.passed and not mine.detail and mine.norm_err <= base.norm_err:
            mine.passed = True
            mine.detail = f"within {whose} own difference on the original (norm_err {base.norm_err:.3g})"


def _as(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """OpenVINO's CPU plugin returns some integer outputs in another integer width (i64 as i32, u8 ...): compare
    the values, exactly, in the original's type. Float outputs are left as they are: a float type that changed is
    a mismatch."""
    if got.dtype != ref.dtype and got.dtype.kind in "iub" and ref.dtype.kind in "iub":
        return got.astype(ref.dtype)
    return got
