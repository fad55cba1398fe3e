"""How fast is the pass, against the floor of loading and saving the same model, and against onnxsim?

    python scripts/export_bert_base.py /tmp/bert_base.onnx     # once (needs torch), 440 MB, not committed
    python scripts/bench_pass.py /tmp/bert_base.onnx [--repeat 3] [--scaling]

Each job runs in its own process (so that peak memory is its own), interleaved over --repeat rounds; medians.
Prints, measured in the same run:
  floor      onnx.load + onnx.save of the model
  pass       python -m passes.fc_to_conv IN OUT --no-verify        ratio to the floor (goal <= 1.0x)
  verified   python -m passes.fc_to_conv IN OUT                    ratio to onnxsim (goal <= 1x)
  onnxsim    onnxsim IN OUT (simplifies and checks), if installed
and the peak memory of the pass against the model file's size (goal <= 2.5x).
With --scaling: synthetic models of 100, 1,000 and 10,000 FC layers, time per layer of the pass (no verification).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# onnx.load + onnx.save; a model with external data is saved with external data (one file beside it), as fc2conv
# writes it, and as onnx must for a model over 2 GB. It prints its own peak memory (VmHWM).
FLOOR = ("import onnx, os, sys; a, b = sys.argv[1:3]; "
         "ext = any(t.data_location == 1 for t in onnx.load(a, load_external_data=False).graph.initializer); "
         "onnx.save(onnx.load(a), b, save_as_external_data=ext, location=os.path.basename(b) + '.data'); "
         "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
CANONICAL = ("import onnx, sys; b = open(sys.argv[1], 'rb').read(); "
             "sys.exit(onnx.load_model_from_string(b).SerializeToString() != b)")


def timed(cmd, env=None):
    """Wall-clock seconds and CPU seconds (user + system) of one run of `cmd`. CPU time moves less than wall time
    when the machine's neighbours are busy (on this VM wall times of one job varied up to 2x within minutes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    timed.stdout = r.stdout
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def scaling(tmp):
    sys.path.insert(0, ROOT)
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    print("\nscaling (pass only, no verification, in-process):")
    from passes.fc_to_conv import Options, convert
    per = {}
    for layers in (100, 1000, 10000):
        rng = np.random.default_rng(0)
        nodes, inits, x = [], [], "x"
        for i in range(layers):
            inits.append(numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"fc{i}"))
            nodes.append(helper.make_node("Relu", [f"h{i}"], [f"a{i}"]))
            x = f"a{i}"
        g = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", 16])], inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        t = time.perf_counter()
        _, report = convert(model, Options(verify=False))
        elapsed = time.perf_counter() - t
        assert len(report.converted) == layers
        per[layers] = elapsed / layers
        print(f"  {layers:6d} layers: {elapsed:7.2f} s, {per[layers] * 1e3:.3f} ms per layer")
    print(f"  per-layer time at 10,000 / at 1,000: {per[10000] / per[1000]:.2f}x (goal <= 1.3x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scaling", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fc2conv-bench-")
    try:
        if a.model:
            size = os.path.getsize(a.model)
            out = os.path.join(tmp, "out.onnx")
            env = dict(os.environ, PYTHONPATH=ROOT)
            fc2conv = [sys.executable, "-m", "passes.fc_to_conv", a.model, out, "--quiet"]
            jobs = {"floor": [sys.executable, "-c", FLOOR, a.model, out],
                    "pass": fc2conv + ["--no-verify"], "verified": fc2conv}
            if shutil.which("onnxsim"):
                jobs["onnxsim"] = ["onnxsim", a.model, out]
            times = {k: [] for k in jobs}
            cpu = {k: [] for k in jobs}
            floor_peak = 0
            for _ in range(a.repeat):
                for k, cmd in jobs.items():
                    wall, used = timed(cmd, env)
                    times[k].append(wall)
                    cpu[k].append(used)
                    if k == "floor":
                        floor_peak = max(floor_peak, int(timed.stdout.split()[-1]) * 1024)
                    for f in os.listdir(tmp):   # the next job writes afresh (a 4 GB output fills the disk)
                        os.remove(os.path.join(tmp, f))
            med = {k: statistics.median(v) for k, v in times.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            print(f"model {a.model}: {size / 2**20:.0f} MB (.onnx part); medians of {a.repeat} runs each, interleaved")
            for k, v in med.items():
                print(f"  {k:9s} {v:7.2f} s wall  {med_cpu[k]:7.2f} s CPU (range {min(times[k]):.2f}-{max(times[k]):.2f} s)")
            print(f"  pass / floor           {med['pass'] / med['floor']:.2f}x wall, "
                  f"{med_cpu['pass'] / med_cpu['floor']:.2f}x CPU (goal <= 1.0x)")
            if "onnxsim" in med:
                print(f"  verified / onnxsim     {med['verified'] / med['onnxsim']:.2f}x (goal <= 1x)")
                print(f"  onnxsim / floor        {med['onnxsim'] / med['floor']:.2f}x")
            else:
                print("  onnxsim is not installed: pip install onnxsim to compare")
            rep = os.path.join(tmp, "r.json")
            subprocess.run(fc2conv + ["--no-verify", "--report", rep], env=env, check=True, capture_output=True)
            r = json.load(open(rep))
            print(f"  model with its data     {r['model_bytes'] / 2**20:.0f} MB")
            print(f"  peak memory (floor)     {floor_peak / 2**20:.0f} MB = {floor_peak / r['model_bytes']:.2f}x the model")
            print(f"  peak memory (no verify) {r['peak_rss_bytes'] / 2**20:.0f} MB = "
                  f"{r['peak_rss_bytes'] / r['model_bytes']:.2f}x the model (goal <= 2.5x)")
            subprocess.run(fc2conv + ["--report", rep], env=env, check=True, capture_output=True)
            r = json.load(open(rep))
            print(f"  peak memory (verified) {r['peak_rss_bytes'] / 2**20:.0f} MB = "
                  f"{r['peak_rss_bytes'] / r['model_bytes']:.2f}x the model")
            # in a process of its own: a child's peak memory counts what its parent held when it was started
            same = subprocess.run([sys.executable, "-c", CANONICAL, out]).returncode == 0
            print(f"  output is {'' if same else 'NOT '}byte for byte what onnx.save writes")
            print(f"  verified / floor       {med['verified'] / med['floor']:.2f}x wall (goal <= 3x)")
        if a.scaling:
            scaling(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
