"""Original against converted on an NPU toolchain, per model and target: where the nodes run and the estimated
cycles. Prints a table and ratios; times nothing on this machine's CPU.

    pip install -e ".[qnn]"
    python scripts/bench_npu.py qnn [--targets onnxruntime qnn] [--rounds 5] [MODEL ...]

qnn: Qualcomm's QNN HTP emulator through onnxruntime-qnn (tests/qnn_htp.py). QDQ models run quantized, float models
in fp16 (enable_htp_fp16_precision); dynamic dims are fixed to 1, sequences to 16 tokens. The emulator's counts vary
up to 1.5x between sessions: each model and its conversions run in one process, each `rounds` times in a new
session, and the minimum is kept.
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


def qnn(models, targets, rounds):
    import qnn_htp
    print(f"| model | original cycles | " + " | ".join(f"{t}: cycles / original, CPU nodes" for t in targets) + " |")
    print("|---|---|" + "---|" * len(targets))
    with tempfile.TemporaryDirectory() as tmp:
        for path in models:
            name = os.path.basename(path)[:-5]
            paths = [path]
            for t in targets:
                out = os.path.join(tmp, f"{name}.{t}.onnx")
                convert_file(path, out, Options(target=t))
                paths.append(out)
            runs = qnn_htp.measure(paths, fp16="qdq" not in name, dims={"seq": 16, "t": 16}, rounds=rounds)
            base = runs[0]
            cpu = lambda r: sum(r["cpu_nodes"].values())
            if base["error"]:
                print(f"| {name} | fails: {base['error'][:60]} | " + " | ".join(
                    (r["error"] or "loads")[:40] for r in runs[1:]) + " |")
                continue
            cells = [f"{r['error'][:60]}" if r["error"] else f"{r['cycles'] / base['cycles']:.3f}x, {cpu(r)}"
                     for r in runs[1:]]
            print(f"| {name} | {base['cycles']:,} ({cpu(base)} CPU) | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("toolchain", choices=["qnn"])
    ap.add_argument("models", nargs="*", default=DEFAULT)
    ap.add_argument("--targets", nargs="+", default=["onnxruntime", "qnn"])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    qnn(a.models, a.targets, a.rounds)


if __name__ == "__main__":
    main()
