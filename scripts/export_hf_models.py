"""Export small, randomly initialised Hugging Face transformers (DistilBERT, GPT-2) to ONNX, for benchmarks on the
architectures the library really builds (its own attention, GELU and LayerNorm code, GPT-2's Conv1D layers,
which export as Gemm between Reshapes). Not committed: the benchmark reads them from the folder given.

    pip install torch transformers   # export only; the tests never need them
    python scripts/export_hf_models.py /tmp/hf
    python scripts/bench_models.py --extra /tmp/hf/distilbert.onnx:input_ids=1x128,attention_mask=1x128 \\
                                           /tmp/hf/gpt2.onnx:input_ids=1x128
"""
from __future__ import annotations

import os
import sys

import torch


class _Hidden(torch.nn.Module):
    """The model's last hidden state, called by keyword (Hugging Face's forward takes many optional arguments)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        kw = {} if attention_mask is None else {"attention_mask": attention_mask}
        return self.model(input_ids=input_ids, **kw).last_hidden_state


def main(folder: str) -> None:
    from transformers import DistilBertConfig, DistilBertModel, GPT2Config, GPT2Model
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (1, 128))
    mask = torch.ones(1, 128, dtype=torch.int64)
    distil = _Hidden(DistilBertModel(DistilBertConfig(vocab_size=1000, dim=128, n_layers=2, n_heads=4, hidden_dim=512,
                                              max_position_embeddings=128, attn_implementation="eager"))).eval()
    gpt2 = _Hidden(GPT2Model(GPT2Config(vocab_size=1000, n_embd=128, n_layer=2, n_head=4, n_positions=128,
                                        use_cache=False, attn_implementation="eager"))).eval()
    with torch.no_grad():
        # the dynamo exporter, static [1, 128] inputs (the legacy exporter has no aten::diff, which the library's
        # mask code uses)
        torch.onnx.export(distil, (ids, mask), os.path.join(folder, "distilbert.onnx"), opset_version=18,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"], dynamo=True,
                          external_data=False)
        torch.onnx.export(gpt2, (ids,), os.path.join(folder, "gpt2.onnx"), opset_version=18,
                          input_names=["input_ids"], output_names=["hidden"], dynamo=True, external_data=False)
    print("wrote", sorted(os.listdir(folder)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hf")
