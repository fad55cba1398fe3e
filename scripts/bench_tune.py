"""`--tune` on the shipped float models: what each target's toolchain measured, as the README's Tuning table.

    python scripts/bench_tune.py [--target onnxruntime|openvino|qnn|ncnn] [--rounds 5] [--threads 1] [--models mlp ...]
                                 [--toolchain-python V/bin/python]
                                 [--extra PATH:input_ids=2x16,attention_mask=2x16 ...]

For each model: the original's cost, the default conversion's and the written model's ratio (each against the
original measured in its own interleaved run), converted / kept-as-FC layers, and the toolchain runs it took.
Prints a markdown table; nothing here is timed by the tests.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from passes.fc_to_conv import Options, convert_file

HERE = os.path.dirname(os.path.abspath(__file__))
FLOAT = ["mlp", "cnn_classifier", "resnet_tiny", "vit_tiny", "bert_tiny", "gpt_tiny", "transformer_block", "grouped",
         "hf_gpt2", "hf_distilbert", "audio_block", "wrapped_gemms", "keras_encoder", "jax_mlp"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="onnxruntime")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", nargs="*", default=FLOAT)
    ap.add_argument("--threads", type=int, default=1, help="the CPU toolchains' threads (0: the runtime's default)")
    ap.add_argument("--toolchain-python", help="the interpreter that measures (ncnn: a venv with pnnx and ncnn)")
    ap.add_argument("--extra", nargs="*", default=[], metavar="PATH:NAME=DxD,...",
                    help="more models at fixed input dims, e.g. /tmp/families/falcon.onnx:input_ids=2x16,"
                         "attention_mask=2x16 (scripts/export_families.py)")
    a = ap.parse_args(argv)
    cases = [(os.path.join(HERE, "..", "models", n + ".onnx"), n, {}) for n in a.models]
    for extra in a.extra:
        path, _, dims = extra.partition(":")
        shapes = {k: [int(d) for d in v.split("x")] for k, v in (p.split("=") for p in dims.split(",") if p)}
        cases.append((path, os.path.basename(path)[:-5], shapes))
    print("| model | original | converted (the target, no --tune) | written by `--tune` | layers | measurements | time |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for src, name, shapes in cases:
            t0 = time.perf_counter()
            report = convert_file(src, os.path.join(tmp, name + ".onnx"),
                                  Options(target=a.target, tune=True, tune_rounds=a.rounds, tune_threads=a.threads,
                                          toolchain_python=a.toolchain_python,
                                          input_shapes=shapes))
            took = time.perf_counter() - t0
            t = report.tuning
            if t is None:
                print(f"| {name} | not tuned: {report.text().splitlines()[-1]} | | | | | |")
                continue
            converted = t.converted.value / t.original.value if t.converted.value and t.original.value else None
            fmt = lambda r, cost: f"{r:.3f}x" if r else cost.text()   # (no ratio to an original that does not run)
            print(f"| {name} | {t.original.text()} | {fmt(converted, t.converted)} | {fmt(t.ratio, t.tuned)} | "
                  f"{len(report.converted)} / {len(report.tuned)} | {t.measurements} | {took:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
