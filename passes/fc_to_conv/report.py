"""The report of one run: what was converted, what was left alone and why, op counts, and the verification.

Printed as text at the end of a CLI run, written as JSON with --report FILE, returned by the API.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import onnx

from .graph.graph_index import subgraphs
from .result import Skipped
from .result import Converted
from .tune import Tuning
from .verify.downstream import Downstream
from .verify.revert import NOT_CHECKED
from .verify.verdict import Verification


def op_counts(graph: onnx.GraphProto) -> Dict[str, int]:
    """Node counts by op type, in the graph and all its subgraphs."""
    counts: Counter = Counter()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            counts[n.op_type] += 1
            for sub in subgraphs(n):
                walk(sub)
    walk(graph)
    return dict(sorted(counts.items()))


@dataclass
class Report:
    input: str = ""
    output: str = ""
    layout: str = "spatial"
    target: str = "onnxruntime"
    converted: List[Converted] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    ops_before: Dict[str, int] = field(default_factory=dict)
    ops_after: Dict[str, int] = field(default_factory=dict)
    reverted: List[Skipped] = field(default_factory=list)
    verification: Optional[Verification] = None
    downstream: Optional[Downstream] = None    # --check-with: a second runtime on the written model
    tuned: List[Skipped] = field(default_factory=list)   # --tune: left as FC, slower as Convs on the toolchain
    tuning: Optional[Tuning] = None            # --tune: what was measured
    strict: bool = False
    written: bool = False
    model_bytes: int = 0          # the input file and its external data
    peak_rss_bytes: int = 0       # this process's peak resident memory over the run

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.passed

    @property
    def acceptable(self) -> bool:
        """Whether the result may be written: verified (unless verification was off), no revert under strict,
        and the downstream check passed where one was asked for."""
        return ((self.verification is None or self.verified) and not (self.strict and self.reverted)
                and (self.downstream is None or self.downstream.passed))

    def to_json(self) -> str:
        data = asdict(self)
        if self.verification is not None:
            data["verification"]["passed"] = self.verification.passed
            data["verification"]["checker"] = str(self.verification.checker)
        if self.downstream is not None:
            data["downstream"]["passed"] = self.downstream.passed
        return json.dumps(data, indent=2, default=str)

    def text(self) -> str:
        lines = [f"fc2conv: {self.input or '<model>'} -> {self.output or '<model>'}  (layout: {self.layout}"
                 + (f", target: {self.target})" if self.target != "onnxruntime" else ")")]
        total = len(self.converted) + len(self.skipped) + len(self.reverted) + len(self.tuned)
        lines.append(f"converted {len(self.converted)} of {total} fully connected layers"
                     + (f" ({len(self.reverted)} reverted after failing verification)" if self.reverted else ""))
        for c in self.converted:
            extra = f" + Add '{c.fused_add}'" if c.fused_add else ""
            lines.append(f"  CONVERTED {c.op} '{c.name}'{extra}: input {_dims(c.input_shape)} weight "
                         f"{_dims(c.weight_shape)} -> {c.conv_op} '{c.conv}' weight {_dims(c.conv_weight_shape)}")
            lines.extend(f"            note: {n}" for n in c.notes)
        for s in self.skipped:
            lines.append(f"  SKIPPED   {s.op} '{s.name}': {s.reason}")
        for s in self.reverted:
            lines.append(f"  REVERTED  {s.op} '{s.name}': {s.reason}")
        for s in self.tuned:
            lines.append(f"  KEPT FC   {s.op} '{s.name}' ({s.reason})")
        lines.append("ops before: " + _counts(self.ops_before))
        lines.append("ops after:  " + _counts(self.ops_after))
        if self.model_bytes and self.peak_rss_bytes:
            peak, size = self.peak_rss_bytes / 2**20, self.model_bytes / 2**20
            # below 100 MB the Python and onnxruntime baseline (about 100 MB) makes a ratio meaningless
            ratio = f" = {self.peak_rss_bytes / self.model_bytes:.2f}x the model's {size:.0f} MB" if size >= 100 \
                else f" (model {size:.1f} MB)"
            lines.append(f"memory: peak {peak:.0f} MB{ratio}")
        if self.tuning is not None:
            lines.extend(self.tuning.lines())
        lines.extend(self._verification_lines())
        if self.downstream is not None:
            lines.extend(self.downstream.lines())
        return "\n".join(lines)


    def _verification_lines(self) -> List[str]:
        v = self.verification
        if v is None:
            return ["verification: skipped (--no-verify); the model was NOT checked against the original"]
        mode = "optimizations extended (a quantized model: its integer kernels)" if v.integer else \
            "optimizations off" + (" (a quantized model, simulated in float)" if v.quantized else "")
        lines = [f"inputs: {'the first ones generated did not run the original; used ' if v.fallback else ''}"
                 f"{v.inputs}"] if v.inputs else []
        lines.append(f"verification: onnxruntime CPU, {mode}, {v.sets} input set(s), "
                     f"rtol={v.rtol:g} (on max_abs / max|ref|) atol={v.atol:g}")
        if v.error:
            lines.append(f"  FAILED | {v.error}")
        lines.extend("  " + o.line() for o in v.outputs)
        lines.extend(_layers_alone_lines(v.layers_alone))
        lines.append(f"  onnx.checker (full): {v.checker}")
        failed = [o.name for o in v.outputs if not o.passed]
        if failed:
            lines.append(f"  FAILED | Mismatched outputs: {failed}")
        if not v.passed:
            lines.append("  FAILED: the model was not written")
        elif self.strict and self.reverted:
            lines.append("  FAILED (--strict): layers were reverted; the model was not written")
        else:
            lines.append("  PASSED")
        return lines


def _layers_alone_lines(alone: Optional[Dict[str, str]]) -> List[str]:
    """The check of each converted layer on its own: a count, then each layer that failed or was not checked."""
    if alone is None:
        return ["  each converted layer on its own: not run (over 1 GB of weights: the whole model only)"]
    if not alone:
        return []
    bad = {k: why for k, why in alone.items() if why}
    lines = [f"  each converted layer on its own (random activations of its input shape): "
             f"{len(alone) - len(bad)} of {len(alone)} PASSED"]
    for k, why in bad.items():
        status, text = ("NOT CHECKED", why[len(NOT_CHECKED):]) if why.startswith(NOT_CHECKED) else ("FAILED", why)
        lines.append(f"    {status} | layer '{k}': {text}")
    return lines

def _dims(dims: list) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _counts(counts: Dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in counts.items()) or "(none)"
