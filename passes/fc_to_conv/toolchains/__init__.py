"""The toolchains a conversion is measured on (--tune): one module per toolchain, each with one small interface.

    toolchain = require("onnxruntime")          # BadInput, one line naming the extra, when it is not installed
    costs = toolchain.measure([original_path, output_path], rounds=5)

`measure` runs every model in a child process (an EP that aborts ends the child, and its models read "does not
load"; it never ends fc2conv), interleaved round by round, and returns one Cost per model: its figure over the
rounds, their spread, and the unit. The figure is the toolchain's: the median where noise goes both ways (the HTP
emulator's counts), the fastest round where it only adds (CPU latency: another process, a slow spell; one run
measured an original at 60-62 us in three rounds and 103-106 us in two). A toolchain's `noise` is the relative difference below which two costs are
taken as equal: the tuner decides only on differences larger than it, or than the spread it measured.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import BadInput


@dataclass
class Cost:
    value: Optional[float]          # the figure over the runs (statistic); None when the model did not load or run
    unit: str
    runs: List[float] = field(default_factory=list)
    error: Optional[str] = None
    statistic: str = "median"       # "median" (two-sided noise: the emulator) or "min" (CPU time: noise only adds)

    @property
    def spread(self) -> float:
        """median: half the relative distance between the middle runs (25th to 75th percentile); min: the relative
        distance from the fastest run to the next (a slow spell of the machine does not count)."""
        if not self.runs or not self.value:
            return 0.0
        r = sorted(self.runs)
        if self.statistic == "min":
            return (r[1] - r[0]) / self.value if len(r) > 1 else 0.0
        lo, hi = r[(len(r) - 1) // 4], r[(3 * (len(r) - 1) + 3) // 4]
        return (hi - lo) / self.value / 2

    def merged(self, other: "Cost") -> "Cost":
        """This cost and another measurement of the same model as one: the runs pooled, the figure taken again."""
        if self.value is None or other.value is None:
            return self if self.value is None else other
        runs = self.runs + other.runs
        value = min(runs) if self.statistic == "min" else statistics.median(runs)
        return Cost(value, self.unit, runs, None, self.statistic)

    def text(self) -> str:
        if self.value is None:
            return f"does not load ({self.error})"
        return f"{self.value:,.0f} {self.unit}" if self.value >= 100 else f"{self.value:.1f} {self.unit}"


def _registry() -> Dict[str, object]:
    from . import ncnn_cpu, onnxruntime_cpu, openvino_cpu, qnn, rknn_npu
    return {"onnxruntime": onnxruntime_cpu.TOOLCHAIN, "openvino": openvino_cpu.TOOLCHAIN, "qnn": qnn.TOOLCHAIN,
            "ncnn": ncnn_cpu.TOOLCHAIN, "rknn": rknn_npu.TOOLCHAIN}


TOOLCHAINS = ("onnxruntime", "openvino", "qnn", "ncnn", "rknn")


def require(name: str, threads: int = 1, shapes: Optional[Dict[str, List[int]]] = None,
            python: Optional[str] = None):
    """The toolchain `name` at `threads` threads on inputs of `shapes`, measured by the interpreter `python` (None:
    fc2conv's own) (`configured`), or BadInput (exit 2, one line) when it is unknown or not installed there."""
    found = _registry().get(name)
    if found is None:
        raise BadInput(f"--tune: no toolchain measures target '{name}' yet (measured: {', '.join(TOOLCHAINS)}); "
                       "use --target onnxruntime, or convert without --tune")
    configured = found.configured(threads, shapes or {}, python)
    missing = configured.missing()
    if missing:
        raise BadInput(f"--tune: {missing}")
    return configured
