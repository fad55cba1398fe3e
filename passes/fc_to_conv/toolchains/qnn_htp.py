"""Qualcomm's QNN HTP emulator (the `onnxruntime-qnn` plugin EP, the `qnn` extra): does a model load there, which of
its nodes onnxruntime leaves on the CPU, and how many HTP cycles one inference takes.

    python -m passes.fc_to_conv.toolchains.qnn_htp A.onnx [B.onnx ...] [--fp16] [--dim NAME=V ...] [--rounds N]

prints one JSON line per model: {"path", "error", "cpu_nodes": {op: count}, "qnn_partitions", "cycles",
"cycles_per_session", "node_cycles": {node: cycles}}. Each model runs in this process, one after the other
(interleaved), `rounds` times, each time in a new InferenceSession. A session's cycles are the sum of the
profile's "Accelerator (execute) time (cycles)" rows, one row per QNN partition: a model the EP splits in four
runs four graphs, and the smallest row alone describes a fragment of it. "cycles" is the median over the sessions
(the emulator's counts vary up to 1.5x between sessions, and one low session made the minimum misleading: an
original read 8.8M cycles once where seven sessions read 9.9-10.7M); "cycles_per_session" lists them all, so a
caller can judge a difference against their spread. "node_cycles" are the per-op rows of the median session
("<node name>:OpId_N (cycles)" in the profile), keyed by the QNN op's name, summed over partitions. toolchains/qnn.py (--tune), the tests and
scripts/bench_npu.py call it in a child process: an EP that aborts (an assertion inside QNN) ends the child, not
the caller.

How the EP is set up (onnxruntime-qnn 2.x is a plugin for onnxruntime >= 1.24.2):
- `register_execution_provider_library`, the device from `get_ep_devices()`, `add_provider_for_devices`;
- backend `libQnnHtp.so`, which on x86-64 is the HTP emulator; `soc_model` 60 and `htp_arch` 73 (without them the
  ViT's graph fails to finalize with QNN_COMMON_ERROR_MEM_ALLOC, and fp16 precision is refused);
- HTP needs static shapes: each dim_param is fixed (1, or --dim), with onnxruntime's own tool;
- placement: onnxruntime's profile names the provider of every node it ran; the QNN partitions appear as
  fused nodes, every other node ran on the CPU;
- cycles: the EP's `profiling_level` detailed writes a CSV with "Accelerator (execute) time (cycles)".
"""
from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np

def available() -> bool:
    return importlib.util.find_spec("onnxruntime_qnn") is not None


def measure(paths: List[str], fp16: bool = False, dims: Optional[Dict[str, int]] = None, rounds: int = 1,
            timeout: float = 600) -> List[dict]:
    """Run this file on `paths` in a child process; one result per path. When the child died (the EP aborted the
    process on one of them) each path is run again alone, so that a model that aborts takes only its own result
    (an "error") with it: swin_t's original loads where its conversion aborted."""
    found = _child(paths, fp16, dims, rounds, timeout)
    if len(paths) > 1 and any(r.get("died") for r in found):
        return [_child([p], fp16, dims, rounds, timeout)[0] for p in paths]
    return found


def _child(paths: List[str], fp16: bool, dims: Optional[Dict[str, int]], rounds: int, timeout: float) -> List[dict]:
    args = [sys.executable, os.path.abspath(__file__), *paths, "--rounds", str(rounds)]
    args += ["--fp16"] if fp16 else []
    args += [a for k, v in (dims or {}).items() for a in ("--dim", f"{k}={v}")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    found = {r["path"]: r for r in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))}
    died = f"the QNN EP ended the process (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return [found.get(p, {"path": p, "error": died, "died": True, "cpu_nodes": {}, "qnn_partitions": 0,
                          "cycles": None, "cycles_per_session": [], "node_cycles": {}})
            for p in paths]


def static_copy(path: str, dims: Dict[str, int], folder: str) -> str:
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed
    model = onnx.load(path)
    params = {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    for p in sorted(params):
        make_dim_param_fixed(model.graph, p, dims.get(p, 1))
    out = os.path.join(folder, "static.onnx")
    onnx.save(model, out)
    return out


def _feeds(session) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        if "int" in i.type:   # token ids, masks: small valid values
            feeds[i.name] = rng.integers(0, 2, shape).astype(np.int64 if "64" in i.type else np.int32)
        elif "bool" in i.type:
            feeds[i.name] = np.ones(shape, bool)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float16 if "float16" in i.type else np.float32)
    return feeds


TOTAL_ROW = "Accelerator (execute) time (cycles)"


def profile_cycles(csv_path: str) -> Tuple[Optional[int], Dict[str, int]]:
    """One session's cycles from the EP's detailed profile: the sum of the accelerator's execute cycles over its
    partitions (one TOTAL_ROW each), and the cycles of each op (NODE rows, "<name>:OpId_N (cycles)"; the
    partitions' Input/Output rows count in the total only). (None, {}) without a profile."""
    if not os.path.exists(csv_path):
        return None, {}
    total, nodes = None, collections.Counter()
    with open(csv_path, newline="") as f:
        for r in csv.reader(f):
            if len(r) < 7 or r[3] != "CYCLES":
                continue
            if r[6] == TOTAL_ROW:
                total = (total or 0) + int(r[2])
            elif r[1] == "NODE" and ":OpId_" in r[6]:
                nodes[r[6].rsplit(":OpId_", 1)[0]] += int(r[2])
    return total, dict(nodes)


def _once(path: str, fp16: bool, folder: str, devices, feed: Optional[Dict[str, np.ndarray]] = None) -> dict:
    import onnxruntime as ort
    import onnxruntime_qnn as oq
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(folder, "ort")
    options = {"backend_path": oq.get_qnn_htp_path(), "soc_model": "60", "htp_arch": "73",
               "profiling_level": "detailed", "profiling_file_path": os.path.join(folder, "qnn.csv")}
    if fp16:
        options["enable_htp_fp16_precision"] = "1"
    so.add_provider_for_devices(devices, options)
    if os.path.exists(options["profiling_file_path"]):
        os.remove(options["profiling_file_path"])
    try:
        session = ort.InferenceSession(path, so)
        values = session.run(None, feed if feed is not None else _feeds(session))
    except Exception as exc:  # the EP refused the model: that is the finding
        return {"error": str(exc).splitlines()[0][:400], "cpu_nodes": {}, "qnn_partitions": 0, "cycles": None}
    with open(session.end_profiling()) as f:
        events = json.load(f)
    by_node = {e["name"]: e["args"] for e in events
               if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")}
    cpu = collections.Counter(a["op_name"] for a in by_node.values() if a.get("provider") == "CPUExecutionProvider")
    parts = sum(1 for a in by_node.values() if a.get("provider") == "QNNExecutionProvider")
    cycles, nodes = profile_cycles(options["profiling_file_path"])
    return {"error": None, "cpu_nodes": dict(cpu), "qnn_partitions": parts, "cycles": cycles, "node_cycles": nodes,
            **({"values": values} if feed is not None else {})}


def outputs(path: str, feeds: List[Dict[str, np.ndarray]], fp16: bool, timeout: float = 600) -> dict:
    """Run the model at `path` on HTP once per input set, each set's shapes fixed in a copy (HTP needs static
    shapes), in a child process: {"error", "cpu_nodes", "outputs": [[array per output] per set]}."""
    with tempfile.TemporaryDirectory(prefix="fc2conv-qnn-") as tmp:
        np.savez(os.path.join(tmp, "feeds.npz"), **{f"{i}/{k}": v for i, f in enumerate(feeds) for k, v in f.items()})
        args = [sys.executable, os.path.abspath(__file__), path, "--feeds", os.path.join(tmp, "feeds.npz"),
                "--sets", str(len(feeds))] + (["--fp16"] if fp16 else [])
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        line = next((json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")), None)
        if line is None:
            return {"error": f"the QNN EP ended the process (exit {done.returncode}): {done.stderr.strip()[-200:]}",
                    "cpu_nodes": {}, "outputs": []}
        got = np.load(os.path.join(tmp, "out.npz")) if line["error"] is None else {}
        line["outputs"] = [[got[f"{i}/{j}"] for j in range(line["count"])] for i in range(len(feeds))] if got else []
        return line


def _run_sets(path: str, feeds_path: str, sets: int, fp16: bool, devices) -> None:
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed
    data = np.load(feeds_path)
    folder = os.path.dirname(feeds_path)
    results, cpu, error = {}, {}, None
    for i in range(sets):
        feed = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/")}
        model = onnx.load(path)
        for name, value in feed.items():
            make_input_shape_fixed(model.graph, name, list(value.shape))
        static = os.path.join(folder, f"set{i}.onnx")
        onnx.save(model, static)
        r = _once(static, fp16, folder, devices, feed)
        if r["error"]:
            error = r["error"]
            break
        cpu = r["cpu_nodes"]
        for j, value in enumerate(r["values"]):
            results[f"{i}/{j}"] = value
    np.savez(os.path.join(folder, "out.npz"), **results)
    count = len(results) // sets if results else 0
    print(json.dumps({"error": error, "cpu_nodes": cpu, "count": count}), flush=True)


def median_session(runs: List[dict]) -> dict:
    """The sessions of one model as one result: the median session's figures (the lower middle of an even
    count, so that its per-op rows are one session's) and every session's cycles. A model that any session could
    not run is reported as that failure."""
    failed = [r for r in runs if r["error"] or r["cycles"] is None]
    if failed:
        return {**failed[0], "cycles_per_session": [r["cycles"] for r in runs]}
    ordered = sorted(runs, key=lambda r: r["cycles"])
    return {**ordered[(len(ordered) - 1) // 2], "cycles_per_session": [r["cycles"] for r in runs]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--dim", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--feeds", help="run the one model on these input sets (outputs(): --check-with qnn)")
    ap.add_argument("--sets", type=int, default=0)
    a = ap.parse_args(argv)
    import onnxruntime as ort
    import onnxruntime_qnn as oq
    ort.register_execution_provider_library("QNNExecutionProvider", oq.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    if a.feeds:
        return _run_sets(a.paths[0], a.feeds, a.sets, a.fp16, devices)
    dims = {k: int(v) for k, v in (d.split("=") for d in a.dim)}
    with tempfile.TemporaryDirectory() as tmp:
        static = {}
        for i, p in enumerate(a.paths):
            os.makedirs(os.path.join(tmp, str(i)))
            static[p] = static_copy(p, dims, os.path.join(tmp, str(i)))
        runs: Dict[str, List[dict]] = collections.defaultdict(list)
        for _ in range(a.rounds):
            for i, p in enumerate(a.paths):
                runs[p].append(_once(static[p], a.fp16, os.path.join(tmp, str(i)), devices))
        for p in a.paths:
            print(json.dumps({"path": p, **median_session(runs[p])}), flush=True)


if __name__ == "__main__":
    main()
