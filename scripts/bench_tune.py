"""`--tune` on the shipped float models: what each target's toolchain measured, as the README's Tuning table.

    python scripts/bench_tune.py [--target onnxruntime|openvino|qnn] [--rounds 5] [--models mlp bert_tiny ...]

For each model: the original's cost, the default conversion's and the written model's ratio (each against the
original measured in its own interleaved run), converted / kept-as-FC layers, and the toolchain runs it took.
Prints a markdown table; nothing here is timed by the tests.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from passes.fc_to_conv import Options, convert_file

HERE = os.path.dirname(os.path.abspath(__file__))
FLOAT = ["mlp", "cnn_classifier", "resnet_tiny", "vit_tiny", "bert_tiny", "gpt_tiny", "transformer_block", "grouped",
         "hf_gpt2", "hf_distilbert", "audio_block", "wrapped_gemms", "keras_encoder", "jax_mlp"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="onnxruntime")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", nargs="*", default=FLOAT)
    a = ap.parse_args(argv)
    print("| model | original | converted (default) | written by `--tune` | layers | measurements |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models:
            src = os.path.join(HERE, "..", "models", name + ".onnx")
            report = convert_file(src, os.path.join(tmp, name + ".onnx"),
                                  Options(target=a.target, tune=True, tune_rounds=a.rounds))
            t = report.tuning
            if t is None:
                print(f"| {name} | not tuned: {report.text().splitlines()[-1]} | | | | |")
                continue
            converted = t.converted.value / t.original.value if t.converted.value and t.original.value else None
            fmt = lambda r: f"{r:.3f}x" if r else "does not load"
            print(f"| {name} | {t.original.text()} | {fmt(converted)} | {fmt(t.ratio)} | "
                  f"{len(report.converted)} / {len(report.tuned)} | {t.measurements} |", flush=True)


if __name__ == "__main__":
    main()
