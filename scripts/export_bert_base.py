"""Export a BERT-base-sized encoder (about 110M parameters, 440 MB) with random weights, for the benchmarks.
Not committed: written where you say (default /tmp/bert_base.onnx).

    pip install torch==2.13.0
    python scripts/export_bert_base.py [OUT.onnx]

Same architecture as models/bert_tiny.onnx (export_torch_models.BertTiny) at BERT-base sizes: vocabulary 30522,
hidden 768, 12 layers, 12 heads, MLP 3072, 512 positions; dynamic batch and sequence.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import BertTiny, export_legacy  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bert_base.onnx"
    torch.manual_seed(0)
    model = BertTiny(vocab=30522, d=768, heads=12, ff=3072, layers=12, max_pos=512).eval()
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    ids = torch.randint(0, 30522, (1, 128))
    mask = torch.ones(1, 128, dtype=torch.int64)
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
           "hidden": {0: "batch", 1: "seq"}, "pooled": {0: "batch"}}
    export_legacy(model, (ids, mask), out, ["input_ids", "attention_mask"], ["hidden", "pooled"], dyn)


if __name__ == "__main__":
    main()
