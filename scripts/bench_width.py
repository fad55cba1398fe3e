"""At what width does the converted transformer block stop losing on onnxruntime CPU? Sweep the block's width.

    python scripts/bench_width.py [--widths 64 128 256 512 768] [--shapes 2x16 1x128] [--threads 1 0] [--rounds 5]

Builds scripts/make_models.py's pre-LN transformer block (4 heads, MLP 4d) at each width d, converts it with the
default target (unverified: the tests verify the same rules), and times the original and the converted model on
onnxruntime CPU (default graph optimizations) at each batch x tokens shape and intra-op thread count: `rounds`
interleaved rounds of `runs` runs, each model's figure the fastest round's median (as --tune's CPU toolchain
decides). Prints the original's latency and converted / original.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from make_models import transformer_block   # noqa: E402

from passes.fc_to_conv import Options, convert   # noqa: E402


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def round_median(sess, feed, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 768])
    ap.add_argument("--shapes", nargs="+", default=["2x16", "1x128"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__} CPU, default optimizations; fastest of {a.rounds} interleaved rounds "
          f"of {a.runs} runs (median each); converted / original")
    print("width | " + " | ".join(f"{s}, {t or 'default'} thr" for s in a.shapes for t in a.threads))
    for d in a.widths:
        original = transformer_block(d, heads=4, ff=4 * d)
        converted, _ = convert(original, Options(verify=False))
        cells = []
        for shape in a.shapes:
            b, t = (int(v) for v in shape.split("x"))
            feed = {"x": np.random.default_rng(0).standard_normal((b, t, d)).astype(np.float32)}
            for threads in a.threads:
                pair = [session(original, threads), session(converted, threads)]
                for s in pair:
                    round_median(s, feed, 5)
                best = [float("inf")] * 2
                for _ in range(a.rounds):   # interleaved: a slow spell of the machine falls on both
                    best = [min(b_, round_median(s, feed, a.runs)) for b_, s in zip(best, pair)]
                cells.append(f"{best[0]:.0f} us {best[1] / best[0]:.3f}x")
        print(f"{d} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
