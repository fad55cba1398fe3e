"""CPU latency as a toolchain's cost: what onnxruntime_cpu.py and openvino_cpu.py share. A toolchain names the
module that times its models (run as `python -m MODULE A.onnx B.onnx --rounds R --runs N --threads T` in a child
process, so that a runtime that aborts ends the child and its models read "does not load") and how that module
opens a model for inference; everything else, the rounds, the seeded inputs and the statistic, is here.

The child prints one JSON line per model: {"path", "error", "runs": [us, ...]}. Each model is opened once, and
each round times every model in turn (interleaved, so a slow spell of the machine hits all of them alike): `runs`
inferences after one warm-up, fewer for a slow model (as many as ROUND_BUDGET holds, 3 at least: a
BERT-base-sized model, 29 ms a run, runs 8 times a round); a round's figure is the median of its runs, the model's
cost its fastest round (CPU time: noise only adds to it, and a slow spell can take whole rounds). The inputs have
the shapes given (--input-shape); other dynamic dims are fixed as the verification's first input set fixes them
(verify/input_dims.py), the values seeded. `threads` intra-op threads (--tune-threads; 0: the runtime's default).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import Cost

UNIT = "us"
ROUND_BUDGET = 0.25   # seconds of runs per model and round: a slower model runs fewer times (3 at least)
Runner = Callable[[Dict[str, np.ndarray]], object]


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class Latency:
    name = ""
    module = ""             # the module whose main() times the models
    noise = 0.05            # CPU latency on a shared machine: differences under 5% are not decided on
    needs = ("numpy", "onnx", "onnxruntime")   # what the measuring process imports (fc2conv's own modules among them)
    install = ""            # how to install what `needs` beyond fc2conv's own dependencies

    def __init__(self, threads: int = 1, shapes: Optional[Dict[str, List[int]]] = None, python: Optional[str] = None):
        self.threads, self.shapes, self.python = threads, dict(shapes or {}), python

    def configured(self, threads: int, shapes: Dict[str, List[int]], python: Optional[str] = None) -> "Latency":
        """This toolchain at `threads` intra-op threads (0: the runtime's default) on inputs of `shapes`, measured
        by the interpreter `python` (None: fc2conv's own)."""
        return type(self)(threads, shapes, python)

    def missing(self) -> str:
        """'' when the measuring interpreter has every module of `needs`; else one line naming what to install."""
        absent = absent_modules(self.needs, self.python)
        if absent is None:
            return f"--toolchain-python {self.python}: cannot run it as a Python interpreter"
        if not absent:
            return ""
        where = f" in {self.python}" if self.python else ""
        install = self.install or "pip install " + " ".join(absent)
        return f"the {self.name} toolchain needs {', '.join(absent)}{where}: {install}"

    def measure(self, paths: List[str], rounds: int = 5, runs: int = 20, timeout: float = 900) -> List[Cost]:
        """One Cost per path, all timed in one child process; when the child died (a runtime that crashes, as
        ncnn did on a pnnx conversion of the ViT), each path without a result is timed again alone, so that a
        model that crashes takes only its own result."""
        found, died = self._child(paths, rounds, runs, timeout)
        if died and len(paths) > 1:
            for p in paths:
                if p not in found:
                    alone, why = self._child([p], rounds, runs, timeout)
                    found[p] = alone.get(p, {"error": why, "runs": []})
        costs = []
        for p in paths:
            r = found.get(p, {"error": died, "runs": []})
            costs.append(Cost(min(r["runs"]) if r["runs"] and not r["error"] else None, UNIT, r["runs"], r["error"],
                              statistic="min"))
        return costs

    def _child(self, paths: List[str], rounds: int, runs: int, timeout: float) -> Tuple[Dict[str, dict], str]:
        """The results the child process printed, by path, and why it ended early ('' when it did not)."""
        args = [self.python or sys.executable, "-m", self.module, *paths, "--rounds", str(rounds), "--runs", str(runs),
                "--threads", str(self.threads), "--shapes", json.dumps(self.shapes)]
        # the child's temporary files (pnnx's conversions) go into a folder of ours, removed however it ends: a
        # child that crashes runs no cleanup of its own
        with tempfile.TemporaryDirectory(prefix="fc2conv-measure-") as work:
            env = dict(os.environ, TMPDIR=work,
                       PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
            try:
                done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                return {}, f"no result within {timeout:.0f} s"
        found = {}
        for line in done.stdout.splitlines():
            try:
                r = json.loads(line) if line.startswith("{") else None
            except ValueError:
                r = None
            if isinstance(r, dict) and "path" in r:
                found[r["path"]] = r
        if done.returncode == 0:
            return found, ""
        if done.returncode < 0:
            return found, f"the measuring process was ended by {signal.Signals(-done.returncode).name}"
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or [""]
        return found, f"the measuring process ended (exit {done.returncode}): {last[0][-200:]}"


def absent_modules(modules, python: Optional[str] = None) -> Optional[List[str]]:
    """The modules of `modules` that `python` (None: this interpreter) cannot find; None when it does not run."""
    import importlib.util
    if python is None:
        return [m for m in modules if importlib.util.find_spec(m) is None]
    probe = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
    try:
        done = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split() if done.returncode == 0 else None


def feeds_for(path: str, shapes: Optional[Dict[str, List[int]]] = None) -> Dict[str, np.ndarray]:
    import onnx
    from ..graph.shapes import infer
    from ..verify.inputs import make_feeds
    model = onnx.load(path, load_external_data=False)
    return make_feeds(model, infer(model), sets=1, seed=0, fixed=shapes)[0]


def main(argv, open_runner: Callable[[str, int, Dict[str, np.ndarray]], Runner]) -> None:
    """Time the models on the command line; `open_runner(path, threads, feed)` opens one for inference (a new one
    each round) and returns the call that runs it on a feed."""
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="{}", help="JSON: input name -> dims (--input-shape)")
    a = ap.parse_args(argv)
    feeds, rounds, errors = {}, {p: [] for p in a.paths}, {}
    for p in a.paths:
        try:
            feeds[p] = feeds_for(p, json.loads(a.shapes))
        except Exception as exc:    # noqa: BLE001 - the finding is that it does not run
            errors[p] = str(exc).splitlines()[0][:300]
    opened: Dict[str, Tuple[Runner, int]] = {}
    for _ in range(a.rounds):
        for p in a.paths:
            if p in errors:
                continue
            try:
                if p not in opened:   # once: opening a BERT-base-sized model took 0.9 s, as long as 30 runs
                    run = open_runner(p, a.threads, feeds[p])
                    t = time.perf_counter()
                    run(feeds[p])
                    opened[p] = run, max(3, min(a.runs, int(ROUND_BUDGET / max(time.perf_counter() - t, 1e-9))))
                run, runs = opened[p]
                run(feeds[p])
                times = []
                for _ in range(runs):
                    t = time.perf_counter()
                    run(feeds[p])
                    times.append((time.perf_counter() - t) * 1e6)
                rounds[p].append(statistics.median(times))
            except Exception as exc:    # noqa: BLE001
                errors[p] = str(exc).splitlines()[0][:300]
    for p in a.paths:
        print(json.dumps({"path": p, "error": errors.get(p), "runs": rounds[p]}), flush=True)
