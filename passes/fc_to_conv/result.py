"""What one run of the pass returns: the layers it converted, skipped (each with its reason) and reverted, and, on
request, each converted layer cut out on its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import onnx


@dataclass
class Converted:
    name: str
    op: str
    input_shape: list
    weight_shape: list
    conv: str
    conv_weight_shape: list
    layout: str
    dtype: str
    kernel: str = "1x1"
    fused_add: Optional[str] = None
    conv_op: str = "Conv"
    notes: List[str] = field(default_factory=list)
    key: str = ""


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


@dataclass
class PassResult:
    """What a run of the pass did to `model` (edited in place): the layers, and each step with whether it changed
    the model ("convert", then steps.AFTER_REWRITE in order)."""
    model: Optional[onnx.ModelProto] = None
    steps: Dict[str, bool] = field(default_factory=dict)
    converted: List[Converted] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    reverted: List[Skipped] = field(default_factory=list)
    tuned: List[Skipped] = field(default_factory=list)     # left as FC by --tune's measurements
    layers: Dict[str, onnx.ModelProto] = field(default_factory=dict)   # key -> the layer cut out (isolate.py)

    @property
    def modified(self) -> bool:
        return any(self.steps.values())
