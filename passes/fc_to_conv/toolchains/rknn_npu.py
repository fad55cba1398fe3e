"""Rockchip's RKNN compiler (rknn-toolkit2) as a toolchain to measure on: the cycles its build estimates for the
platform (RK3588), summed over the build log's layer table, of an fp16 build (no quantization) at the inputs'
static shapes; rknn_sim.py builds each model and runs the simulator on it, in the interpreter --toolchain-python
names, in a scratch folder of ours (RKNN writes check*.onnx files into the working folder).

rknn-toolkit2 pins numpy < 2, onnx <= 1.18 and torch 2.4, so it lives in a venv of its own:

    python3.12 -m venv R && R/bin/pip install rknn-toolkit2==2.5.0 "setuptools<81"   # (it imports pkg_resources)
    fc2conv in.onnx out.onnx --target rknn --tune --toolchain-python R/bin/python

The estimate is the compiler's, not a timing: the same build gives the same table, so each model is built once
per measurement, whatever the rounds, and the noise floor is small. Inputs: seeded, the dims --input-shape gives,
the others as the verification's first input set fixes them (latency.feeds_for), written for the child as an npz.
A build that RKNN's LayerNormalization rule breaks (KeyError; its message says to disable it) is built again
with that rule off, as scripts/bench_npu.py does.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Dict, List, Optional

import numpy as np

from . import Cost
from .latency import absent_modules, feeds_for

UNIT = "cycles"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rknn_sim.py")
RULE = "convert_layernorm_to_exnorm"


class Rknn:
    name = "rknn"
    noise = 0.02            # the compiler's estimate does not vary between builds: a 2% difference is one
    rounds = 1              # ... so each model is built once per measurement, whatever --tune-rounds says
    install = ("rknn-toolkit2 pins numpy < 2, onnx <= 1.18 and torch 2.4, so it lives in a venv of its own: "
               "python3.12 -m venv R && R/bin/pip install rknn-toolkit2==2.5.0 \"setuptools<81\" (it imports "
               "pkg_resources), named by --toolchain-python R/bin/python")

    def __init__(self, threads: int = 1, shapes: Optional[Dict[str, List[int]]] = None, python: Optional[str] = None):
        self.threads, self.shapes, self.python = threads, dict(shapes or {}), python

    def configured(self, threads: int, shapes: Dict[str, List[int]], python: Optional[str] = None) -> "Rknn":
        """The compiler has no threads; `shapes` fixes the inputs' dims (--input-shape); `python` builds."""
        return Rknn(threads, shapes, python)

    def missing(self) -> str:
        absent = absent_modules(("rknn", "numpy"), self.python)
        if absent is None:
            return f"--toolchain-python {self.python}: cannot run it as a Python interpreter"
        if absent:
            where = f" in {self.python}" if self.python else ""
            return f"the rknn toolchain needs {', '.join(absent)}{where}: {self.install}"
        return ""

    def measure(self, paths: List[str], rounds: int = 1, timeout: float = 1800) -> List[Cost]:
        """One Cost per path: its build's cycles (one run), or why RKNN did not build or run it."""
        with tempfile.TemporaryDirectory(prefix="fc2conv-rknn-") as work:
            return [self._one(path, os.path.join(work, str(i)), timeout) for i, path in enumerate(paths)]

    def _one(self, path: str, folder: str, timeout: float) -> Cost:
        os.mkdir(folder)
        inputs, out = os.path.join(folder, "in.npz"), os.path.join(folder, "out.npz")
        try:
            np.savez(inputs, **feeds_for(path, self.shapes))
        except Exception as exc:    # noqa: BLE001 -- the finding is that it does not run
            return Cost(None, UNIT, [], str(exc).splitlines()[0][:300])
        line = self._child(path, inputs, out, folder, timeout)
        if line.get("error") and os.path.exists(out + ".log") and RULE in open(out + ".log", errors="replace").read():
            line = self._child(path, inputs, out, folder, timeout, "--disable-rule", RULE)
        cycles = line.get("cycles")
        if line.get("error") or not cycles:
            return Cost(None, UNIT, [], line.get("error") or "RKNN's build log has no layer table")
        return Cost(float(cycles), UNIT, [float(cycles)])

    def _child(self, path: str, inputs: str, out: str, folder: str, timeout: float, *extra: str) -> dict:
        args = [self.python or "python", SCRIPT, os.path.abspath(path), inputs, out, *extra]
        try:
            done = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {timeout:.0f} s"}
        found = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        if found:
            return found[-1]
        last = [x for x in done.stderr.strip().splitlines() if x.strip()][-1:] or [""]
        return {"error": f"RKNN's process ended (exit {done.returncode}): {last[0][-200:]}"}


TOOLCHAIN = Rknn()
