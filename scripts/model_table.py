"""Convert every model in models/ and print the README's per-model table (markdown).

    python scripts/model_table.py

For each model: FC layers (Gemm, MatMul and Einsum, subgraphs included), how many became Convs (full-kernel ones
counted apart), how many stayed, the Reshape and Transpose nodes the conversion added, Flatten nodes removed,
and the verification verdict with the worst normalized error over all outputs.
"""
from __future__ import annotations

import glob
import os

from passes.fc_to_conv import convert
from passes.fc_to_conv.files.model_io import load

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    print("| model | FC layers | converted (full-kernel) | left (why) | Reshape added | Transpose added "
          "| Flatten removed | verification (worst norm_err) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(HERE, "..", "models", "*.onnx"))):
        model, _ = load(path)
        _, r = convert(model)
        b, a = r.ops_before, r.ops_after
        fc = b.get("Gemm", 0) + b.get("MatMul", 0) + b.get("Einsum", 0)
        full = sum(c.layout == "full-kernel" for c in r.converted)
        why = {s.reason.split(" (")[0].split(":")[0] for s in r.skipped}
        left = f"{len(r.skipped)}" + (f" ({'; '.join(sorted(why))})" if why else "")
        worst = max((o.norm_err for o in r.verification.outputs), default=0.0)
        verdict = ("PASSED" if r.verified else "FAILED") + f" ({worst:.1e})"
        delta = lambda op: a.get(op, 0) - b.get(op, 0)
        print(f"| {os.path.basename(path)} | {fc} | {len(r.converted)} ({full}) | {left} | {delta('Reshape'):+d} "
              f"| {delta('Transpose'):+d} | {-delta('Flatten')} | {verdict} |")


if __name__ == "__main__":
    main()
