"""The options of a conversion, one field per CLI flag (__main__.py maps them), and the pass they make."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .graph_pass import FcToConvPass
from .progress import Progress
from .rules import rules


@dataclass
class Options:
    layout: str = "spatial"             # "spatial" or "batch": see layout.py
    mode: str = "full"                  # "full": classifier heads get full-kernel Convs; "1x1": 1x1 only
    verify: bool = True                 # run original and result on onnxruntime and compare every output
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)   # fixed shapes for the verification
    inputs: Optional[Dict[str, np.ndarray]] = None                      # the user's own input arrays
    input_sets: int = 3
    seed: int = 0
    rtol: Optional[float] = None        # None: per-dtype default from compare.TOLERANCES
    atol: Optional[float] = None
    strict: bool = False                # a reverted layer fails the run instead of staying unconverted
    check_with: Optional[str] = None    # "openvino": a second runtime reads, compiles and runs the result too
    progress: Optional[Progress] = None  # a progress line for long runs (the CLI's, on a terminal)
    convert_dynamic: bool = False       # MatMulInteger -> ConvInteger too (slow on onnxruntime's CPU)
    target: str = "onnxruntime"         # the runtime the output is for: the graph shape it runs fastest (targets/targets.py)
    tune: bool = False                  # measure on the target's toolchain; put back the layers slower as Convs (tune.py)
    tune_rounds: int = 5                # interleaved rounds of each measurement
    tune_threads: int = 1               # CPU toolchains' intra-op threads (0: the runtime's default)
    toolchain_python: Optional[str] = None   # the interpreter that measures (a venv of its own: ncnn's pnnx, ...)
    decisions: Optional[str] = None     # with tune: write its choices there; without: apply that file's (decisions.py)

    def make_pass(self) -> FcToConvPass:
        return FcToConvPass(self.layout, self.mode, rules(self.convert_dynamic), self.target)
