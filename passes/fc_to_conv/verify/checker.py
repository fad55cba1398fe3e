"""onnx.checker (full) on the written model, and its verdict in the report."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from typing import Tuple, Union

import onnx

from ..files.model_io import needs_external


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


def run_checker(model: Union[onnx.ModelProto, str]) -> Tuple[bool, str]:
    """onnx.checker with full_check (which includes strict shape inference), on a model or a model file."""
    try:
        if isinstance(model, str) or not needs_external(model, False):
            onnx.checker.check_model(model, full_check=True)
        else:
            with tempfile.TemporaryDirectory(prefix="fc2conv-check-") as tmp:
                path = os.path.join(tmp, "model.onnx")
                onnx.save_model(model, path, save_as_external_data=True, location="model.onnx.data")
                onnx.checker.check_model(path, full_check=True)
        return True, ""
    except Exception as exc:
        return False, first_line(exc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
