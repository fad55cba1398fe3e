"""Original against converted on an NPU toolchain, per model and target: where the nodes run and the estimated
cycles. Prints a table and ratios; times nothing on this machine's CPU.

    pip install -e ".[qnn]"
    python scripts/bench_npu.py qnn [--targets onnxruntime qnn] [--rounds 5] [MODEL ...]
    python scripts/bench_npu.py rknn --rknn-python /path/to/rknn-venv/bin/python [--targets onnxruntime rknn]
    python scripts/bench_npu.py vela --vela-python /path/to/vela-venv/bin/python [--targets onnxruntime ethos-u]

qnn: Qualcomm's QNN HTP emulator through onnxruntime-qnn (tests/qnn_htp.py). QDQ models run quantized, float models
in fp16 (enable_htp_fp16_precision); dynamic dims are fixed to 1, sequences to 16 tokens. The emulator's counts vary
up to 1.5x between sessions: each model and its conversions run in one process, interleaved, each `rounds` times in a
new session; a session's cycles are summed over its QNN partitions, and the median session is kept (the original's
spread over its sessions is printed beside it).

rknn: Rockchip's rknn-toolkit2 in its own venv (`python -m venv V && V/bin/pip install rknn-toolkit2==2.5.0`: it
pins numpy < 2, onnx <= 1.18 and torch 2.4), run through passes/fc_to_conv/toolchains/rknn_sim.py on each file:
an fp16 build for the RK3588, its estimated cycles (the layer table's totals), the layers on its NPU and CPU, and
the simulator's outputs against onnxruntime's run of the original on the same inputs (max_abs / max|ref|).
Batch 1, 16 tokens.

vela: Arm's Vela 5.2 in its own venv, through scripts/vela_sim.py on each file with its dynamic dims fixed (batch
1, other dims 16): onnx2tf's full-integer int8 TFLite, compiled for the Ethos-U55-128 and the Ethos-U85-256, their
estimated total cycles and the operators Vela leaves on the CPU.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from passes.fc_to_conv import Options, convert_file  # noqa: E402

DEFAULT = [os.path.join(ROOT, "models", m + ".onnx") for m in
           ("mlp", "cnn_classifier", "resnet_tiny", "vit_tiny", "bert_tiny", "gpt_tiny", "transformer_block",
            "grouped", "hf_gpt2", "hf_distilbert", "audio_block", "wrapped_gemms")] + \
    sorted(p for p in glob.glob(os.path.join(ROOT, "models", "quantized", "*_qdq_*.onnx")))


QNN_DIMS = {"seq": 16, "t": 16}   # every other dynamic dim is fixed to 1


def _header(first: str, each: str, targets) -> None:
    print(f"| model | {first} | " + " | ".join(f"{t}: {each}" for t in targets) + " |")
    print("|---|---|" + "---|" * len(targets))


def _conversions(path: str, targets, folder: str) -> list:
    """The model's path, then the path of its conversion for each target (written into `folder`); a target
    written TARGET:LAYOUT converts with that --layout (onnxruntime:batch)."""
    name, paths = os.path.basename(path)[:-5], [path]
    for t in targets:
        target, _, layout = t.partition(":")
        paths.append(os.path.join(folder, f"{name}.{target}.{layout or 'spatial'}.onnx"))
        convert_file(path, paths[-1], Options(target=target, layout=layout or "spatial"))
    return paths


def _qairt(path: str, python: str, folder: str) -> str:
    """Qualcomm's own rewrite of the model's static copy (scripts/qairt_l2c.py in qairt-dev's venv): its path, or
    an error line."""
    from passes.fc_to_conv.toolchains.qnn_htp import static_copy
    work = tempfile.mkdtemp(dir=folder)
    out = os.path.join(folder, os.path.basename(path)[:-5] + ".qairt.onnx")
    result = _child(python, os.path.join(ROOT, "scripts", "qairt_l2c.py"), static_copy(path, QNN_DIMS, work), out)
    return out if not result["error"] else "qairt: " + result["error"]


def qnn(models, targets, rounds, qairt_python=None):
    import qnn_htp
    columns = targets + (["qairt LinearToConv"] if qairt_python else [])
    _header("original cycles", "cycles / original, CPU nodes", columns)
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            name = os.path.basename(path)[:-5]
            paths = _conversions(path, targets, tmp)
            if qairt_python:
                paths.append(_qairt(path, qairt_python, tmp))
            failed = {p for p in paths if p.startswith("qairt: ")}   # qairt's error, in place of its output
            runs = qnn_htp.measure([p for p in paths if p not in failed], fp16="qdq" not in name, dims=QNN_DIMS,
                                   rounds=rounds)
            runs = [{"error": p, "cpu_nodes": {}} if p in failed else runs.pop(0) for p in paths]
            base = runs[0]
            cpu = lambda r: sum(r["cpu_nodes"].values())
            if base["error"]:
                print(f"| {name} | fails: {base['error'][:60]} | " + " | ".join(
                    (r["error"] or "loads")[:40] for r in runs[1:]) + " |")
                continue
            cells = [f"{r['error'][:60]}" if r["error"] else f"{r['cycles'] / base['cycles']:.3f}x, {cpu(r)}"
                     for r in runs[1:]]
            print(f"| {name} | {base['cycles']:,} ({cpu(base)} CPU, sessions {_spread(base)}) | "
                  + " | ".join(cells) + " |", flush=True)


def _spread(run) -> str:
    """How far one model's sessions lie apart: (max - min) / median of its cycles."""
    c = [x for x in run["cycles_per_session"] if x]
    return f"±{(max(c) - min(c)) / run['cycles'] / 2:.0%}" if len(c) > 1 else "1"


def _static_feeds(path):
    """Inputs with every dynamic dim fixed (batch 1, other dims 16), token ids and masks 0 or 1."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (1 if k == 0 else 16) for k, d in enumerate(i.shape)]
        feeds[i.name] = rng.integers(0, 2, shape).astype(np.int64) if "int" in i.type else \
            rng.standard_normal(shape).astype(np.float32)
    return feeds, sess.run(None, feeds)


def _child(python, script, *args, cwd=None, timeout=1800):
    """`script` run by another venv's `python`: the one JSON line it prints (an error when it printed none)."""
    import json
    import subprocess
    done = subprocess.run([python, script, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return next((json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")),
                {"error": f"exit {done.returncode}", "cycles": None})


def rknn(models, targets, python):
    import numpy as np
    here = os.path.join(ROOT, "passes", "fc_to_conv", "toolchains", "rknn_sim.py")
    _header("original cycles (NPU/CPU layers, rel err)", "cycles / original (NPU/CPU layers, rel err)", targets)
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            name = os.path.basename(path)[:-5]
            feeds, ref = _static_feeds(path)
            np.savez(os.path.join(tmp, "in.npz"), **feeds)
            paths = _conversions(path, targets, tmp)
            cells, base = [], None
            for i, p in enumerate(paths):
                out = os.path.join(tmp, f"out{i}.npz")
                line = _child(python, here, p, os.path.join(tmp, "in.npz"), out, cwd=tmp, timeout=1200)
                if line["error"] and "convert_layernorm_to_exnorm" in open(out + ".log").read():
                    line = _child(python, here, p, os.path.join(tmp, "in.npz"), out,
                                  "--disable-rule", "convert_layernorm_to_exnorm", cwd=tmp, timeout=1200)
                    line["note"] = "convert_layernorm_to_exnorm disabled"
                if line["error"] or not line["cycles"]:
                    cells.append((line["error"] or "no layer table")[:60])
                    continue
                got = np.load(out)
                err = max(float(np.max(np.abs(got[f"arr_{k}"].reshape(r.shape) - r)) / max(float(np.max(np.abs(r))),
                                                                                          1e-12))
                          for k, r in enumerate(ref))
                ratio = f"{line['cycles'] / base:.3f}x" if i and base else f"{line['cycles']:,}"
                base = line["cycles"] if i == 0 else base
                note = f", {line['note']}" if line.get("note") else ""
                cells.append(f"{ratio} ({line['npu_layers']}/{line['cpu_layers']}, {err:.1e}{note})")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def vela(models, targets, python):
    from passes.fc_to_conv.toolchains.qnn_htp import static_copy
    here = os.path.join(ROOT, "scripts", "vela_sim.py")
    _header("original cycles U55-128 / U85-256 (CPU ops)", "U55 / U85 against the original (CPU ops)", targets)
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            name = os.path.basename(path)[:-5]
            paths = _conversions(path, targets, tmp)
            cells, base = [], None
            for i, p in enumerate(paths):
                work = os.path.join(tmp, f"{name}.{i}")
                os.makedirs(work)
                static = static_copy(p, {"seq": 16, "t": 16}, work)
                line = _child(python, here, static, work)
                if line["error"]:
                    cells.append(line["error"][:80])
                    continue
                if i == 0:
                    base = line
                    cells.append(f"{line['u55']:,} / {line['u85']:,} ({line.get('cpu_ops', 0)})")
                elif base:
                    cells.append(f"{line['u55'] / base['u55']:.3f}x / {line['u85'] / base['u85']:.3f}x "
                                 f"({line.get('cpu_ops', 0)})")
                else:
                    cells.append(f"{line['u55']:,} / {line['u85']:,} ({line.get('cpu_ops', 0)})")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("toolchain", choices=["qnn", "rknn", "vela"])
    ap.add_argument("models", nargs="*", default=DEFAULT, type=os.path.abspath)
    ap.add_argument("--targets", nargs="+", help="default: onnxruntime and the toolchain's own target; "
                    "TARGET:LAYOUT converts with that --layout, e.g. onnxruntime:batch")
    ap.add_argument("--rounds", type=int, default=5, help="qnn: sessions per model")
    ap.add_argument("--rknn-python", help="rknn: the Python of rknn-toolkit2's venv")
    ap.add_argument("--qairt-python", help="qnn: the Python of qairt-dev's venv (scripts/qairt_l2c.py): a column "
                    "for Qualcomm's LinearToConvPass on each model's static copy")
    ap.add_argument("--vela-python", help="vela: the Python of the venv with ethos-u-vela and onnx2tf")
    a = ap.parse_intermixed_args()
    targets = a.targets or ["onnxruntime", {"vela": "ethos-u"}.get(a.toolchain, a.toolchain)]
    if a.toolchain == "qnn":
        qnn(a.models, targets, a.rounds, a.qairt_python)
    elif a.toolchain == "vela":
        if not a.vela_python:
            ap.error("vela needs --vela-python")
        vela([m for m in a.models if "qdq" not in m], targets, a.vela_python)
    else:
        if not a.rknn_python:
            ap.error("rknn needs --rknn-python")
        rknn([m for m in a.models if "qdq" not in m], targets, a.rknn_python)


if __name__ == "__main__":
    main()
