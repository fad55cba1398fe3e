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
with that rule off, as scripts/bench_npu.py does. A model whose simulated outputs are not its own (onnxruntime's,
within fp16's 5e-2) costs nothing: it reads "does not load" with the error, so --tune never chooses a form for
being cheaper when RKNN computes it wrongly (the original Hugging Face GPT-2 does; its conversion does not).
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
TOLERANCE = 5e-2        # the simulator's fp16 outputs against onnxruntime's (max_abs / max|ref|): see _wrong


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
        wrong = _wrong(path, inputs, out)
        if wrong:
            return Cost(None, UNIT, [], wrong)
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


def _wrong(path: str, inputs: str, out: str) -> str:
    """Why the simulator's outputs are not the model's (onnxruntime's run of it on the same inputs), or ''. An
    fp16 build agrees within 1.4e-3 (max_abs / max|ref|) on the shipped models; the original Hugging Face GPT-2
    came out at 0.48 (its wrapped Gemms: README), a form --tune must not choose for being cheaper."""
    import onnxruntime as ort
    feeds = dict(np.load(inputs))
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    got = np.load(out)
    worst = 0.0
    for k, ref in enumerate(want):
        ref = np.asarray(ref, np.float64)
        value = np.asarray(got[f"arr_{k}"], np.float64)
        if value.size != ref.size:
            return f"RKNN's output {k} has {value.size} values, the model's {ref.size}"
        worst = max(worst, float(np.max(np.abs(value.reshape(ref.shape) - ref), initial=0)) /
                    max(float(np.max(np.abs(ref), initial=0)), 1e-12))
    return f"RKNN computes it wrongly ({worst:.1e} of the output's magnitude from onnxruntime's)" \
        if worst > TOLERANCE else ""
