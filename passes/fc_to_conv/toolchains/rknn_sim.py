"""Rockchip's RKNN compiler and simulator on one model: run with the Python of rknn-toolkit2's own venv (it pins
numpy < 2, onnx <= 1.18 and torch 2.4, so it cannot share fc2conv's), by its path (it imports nothing of
fc2conv's), called by the rknn toolchain (rknn_npu.py, --tune: not named rknn.py, as this folder is first on the
path here and `rknn` is rknn-toolkit2's) and by scripts/bench_npu.py:

    R/bin/python passes/fc_to_conv/toolchains/rknn_sim.py MODEL.onnx INPUTS.npz OUT.npz [--platform rk3588]

Builds the model for the platform in fp16 (no quantization), runs the simulator on the inputs, saves its outputs to
OUT.npz (the build log beside it, OUT.npz.log) and prints one JSON line: the summed per-layer "Total" cycles of the
build log's layer table (estimated for the platform; the simulator itself is not cycle-accurate), how many layers
RKNN placed on the NPU and on the CPU, and the error, if any. Inputs in the npz fix every dynamic dim. RKNN writes
check*.onnx files into the current directory: run it in a scratch folder.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

# "... RKNN: [hh:mm:ss.ms] 3    exMatMul  FLOAT16  NPU  (8,16,1,1),(4,16,1,16)  (4,8,1,16)  141/64/141  2  name"
LAYER = re.compile(r"RKNN: \[[^\]]*\]\s+(\d+)\s+(\S+)\s+(\S+)\s+(NPU|CPU)\s+.*?\s(\d+)/(\d+)/(\d+)\s")


def layers(log: str):
    return [(m.group(2), m.group(4), int(m.group(7))) for m in LAYER.finditer(log)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--platform", default="rk3588")
    ap.add_argument("--disable-rule", action="append", default=[])
    a = ap.parse_args()
    from rknn.api import RKNN
    feeds = dict(np.load(a.inputs))
    names = list(feeds)
    result = {"path": a.model, "error": None, "cycles": None, "npu_layers": 0, "cpu_layers": 0}
    log_path = a.out + ".log"
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "w") as log:   # the compiler's layer table is written by native code to fds 1 and 2
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            rknn = RKNN(verbose=True)
            # its LayerNormalization rule raises KeyError on some models; its own message says to disable it
            rknn.config(target_platform=a.platform, disable_rules=a.disable_rule)
            steps = [("load_onnx", lambda: rknn.load_onnx(model=a.model, inputs=names,
                                                           input_size_list=[list(feeds[n].shape) for n in names])),
                     ("build", lambda: rknn.build(do_quantization=False)),
                     ("init_runtime", lambda: rknn.init_runtime())]
            for name, step in steps:
                if step() != 0:
                    raise RuntimeError(f"{name} failed")
            outs = rknn.inference(inputs=[feeds[n] for n in names], data_format="nchw")
            if outs is None:
                raise RuntimeError("inference failed")
            np.savez(a.out, *outs)
        except Exception as exc:  # the toolchain refused or crashed on the model: that is the finding
            lines = [x for x in str(exc).splitlines() if x.strip()]   # RKNN's own messages carry a traceback:
            result["error"] = f"{type(exc).__name__}: {lines[-1][:200] if lines else ''}"   # its last line says why
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    with open(log_path) as f:
        text = f.read()
    found = layers(text)
    if found:
        result["cycles"] = sum(c for _, _, c in found)
        result["npu_layers"] = sum(1 for _, t, _ in found if t == "NPU")
        result["cpu_layers"] = sum(1 for _, t, _ in found if t == "CPU")
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
