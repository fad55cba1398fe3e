"""Export the real-architecture test models in models/ from PyTorch, with random weights (no downloads).

    pip install torch==2.13.0 onnxscript   # only for this script; tests never need torch
    python scripts/export_torch_models.py

Each model is small (hidden sizes of 32 to 128) so that models/ stays a few MB; the architectures are the real
ones, exported the way users export them. torch.manual_seed(0) makes the weights deterministic.

- torch_mlp.onnx        nn.Sequential MLP, legacy exporter (Gemm with transB=1), dynamic batch.
- bert_tiny.onnx        BERT-style encoder: token/position embeddings, 2 post-LN layers, 4 heads, GELU MLP,
                        input_ids + attention_mask with dynamic batch and sequence (legacy exporter: MatMul+Add
                        on [B, T, K]).
- bert_tiny_external.onnx (+ .onnx.data)  the same model saved with its weights in external data.
- mlp_fp16.onnx         an fp16 MLP (weights, activations and Gemm in float16), dynamic batch.
"""
from __future__ import annotations

import math
import os
import warnings

import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, bias):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, self.dh).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh) + bias
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.o(out)


class BertLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.att, self.ln1 = Attention(d, heads), nn.LayerNorm(d)
        self.ff1, self.ff2, self.ln2 = nn.Linear(d, ff), nn.Linear(ff, d), nn.LayerNorm(d)

    def forward(self, x, bias):
        x = self.ln1(x + self.att(x, bias))
        return self.ln2(x + self.ff2(torch.nn.functional.gelu(self.ff1(x))))


class BertTiny(nn.Module):
    def __init__(self, vocab=1000, d=64, heads=4, ff=128, layers=2, max_pos=128):
        super().__init__()
        self.tok, self.pos, self.ln = nn.Embedding(vocab, d), nn.Embedding(max_pos, d), nn.LayerNorm(d)
        self.layers = nn.ModuleList(BertLayer(d, heads, ff) for _ in range(layers))
        self.pool = nn.Linear(d, d)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.ln(self.tok(input_ids) + self.pos(pos))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pool(x[:, 0]))


def mlp(d_in=32, hidden=(128, 64), d_out=10):
    dims = (d_in,) + hidden
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(dims[-1], d_out)).eval()


def export_legacy(model, args, path, inputs, outputs, dynamic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, path, dynamo=False, opset_version=17, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    onnx.checker.check_model(path, full_check=True)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


def main():
    os.makedirs(MODELS, exist_ok=True)
    out = lambda name: os.path.join(MODELS, name)
    torch.manual_seed(0)

    export_legacy(mlp(), (torch.randn(2, 32),), out("torch_mlp.onnx"), ["x"], ["logits"],
                  {"x": {0: "batch"}, "logits": {0: "batch"}})

    bert = BertTiny().eval()
    ids = torch.randint(0, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.int64)
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
           "hidden": {0: "batch", 1: "seq"}, "pooled": {0: "batch"}}
    export_legacy(bert, (ids, mask), out("bert_tiny.onnx"), ["input_ids", "attention_mask"],
                  ["hidden", "pooled"], dyn)

    m = onnx.load(out("bert_tiny.onnx"))
    path = out("bert_tiny_external.onnx")
    for stale in (path, path + ".data"):
        if os.path.exists(stale):
            os.remove(stale)
    onnx.save_model(m, path, save_as_external_data=True, location="bert_tiny_external.onnx.data",
                    size_threshold=1024)
    print(f"wrote {os.path.relpath(path)} (+ {os.path.getsize(path + '.data')} bytes of external data)")

    export_legacy(mlp().half(), (torch.randn(2, 32).half(),), out("mlp_fp16.onnx"), ["x"], ["logits"],
                  {"x": {0: "batch"}, "logits": {0: "batch"}})


if __name__ == "__main__":
    main()
