"""What one run of the pass returns: the layers it converted, skipped (each with its reason) and reverted, and, on
request, each converted layer cut out on its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import onnx

from .rewrite import Converted


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


@dataclass
class PassResult:
    converted: List[Converted] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    reverted: List[Skipped] = field(default_factory=list)
    layers: Dict[str, onnx.ModelProto] = field(default_factory=dict)   # key -> the layer cut out (isolate.py)
