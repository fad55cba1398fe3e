"""Export small, randomly initialised Hugging Face transformers (DistilBERT, GPT-2) to ONNX: the architectures the
library really builds (its own attention, GELU and LayerNorm code, its mask arithmetic, GPT-2's Conv1D layers,
which export as Gemm between Reshapes), as `torch.onnx.export(..., dynamo=True)` writes them.

    pip install torch transformers   # export only; the tests never need them
    python scripts/export_hf_models.py            # models/hf_distilbert.onnx, models/hf_gpt2.onnx (committed)
    python scripts/export_hf_models.py /tmp/hf --width 128 --static   # the README's benchmark models, not committed

The committed models are width 64 (4 heads, MLP 256), 2 layers, a 512-token vocabulary and 128 positions, with a
dynamic batch and sequence (about 0.6 MB each); --static fixes the inputs at [1, 128].
"""
from __future__ import annotations

import argparse
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class _Hidden(torch.nn.Module):
    """The model's last hidden state, called by keyword (Hugging Face's forward takes many optional arguments)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        kw = {} if attention_mask is None else {"attention_mask": attention_mask}
        return self.model(input_ids=input_ids, **kw).last_hidden_state


def main() -> None:
    from transformers import DistilBertConfig, DistilBertModel, GPT2Config, GPT2Model
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--static", action="store_true", help="fixed [1, 128] inputs instead of dynamic batch and seq")
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    torch.manual_seed(0)
    ids = torch.randint(0, a.vocab, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    if a.static:
        ids, mask = ids[:1].repeat(1, 8), mask[:1].repeat(1, 8)
    w = a.width
    distil = _Hidden(DistilBertModel(DistilBertConfig(vocab_size=a.vocab, dim=w, n_layers=2, n_heads=4,
                                                      hidden_dim=4 * w, max_position_embeddings=128,
                                                      attn_implementation="eager"))).eval()
    gpt2 = _Hidden(GPT2Model(GPT2Config(vocab_size=a.vocab, n_embd=w, n_layer=2, n_head=4, n_positions=128,
                                        use_cache=False, attn_implementation="eager"))).eval()
    seq = {0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("seq", max=128)}
    prefix = "" if a.static else "hf_"
    with torch.no_grad():
        # the dynamo exporter (the legacy exporter has no aten::diff, which the library's mask code uses)
        torch.onnx.export(distil, (ids, mask), os.path.join(a.folder, prefix + "distilbert.onnx"), opset_version=18,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"], dynamo=True,
                          external_data=False,
                          dynamic_shapes=None if a.static else {"input_ids": seq, "attention_mask": seq})
        torch.onnx.export(gpt2, (ids,), os.path.join(a.folder, prefix + "gpt2.onnx"), opset_version=18,
                          input_names=["input_ids"], output_names=["hidden"], dynamo=True, external_data=False,
                          dynamic_shapes=None if a.static else {"input_ids": seq})
    print("wrote", sorted(f for f in os.listdir(a.folder) if f.startswith(prefix)))


if __name__ == "__main__":
    main()
