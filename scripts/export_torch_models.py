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
- cnn_classifier.onnx   an AlexNet/VGG-style CNN on 3x32x32 images: conv/relu/pool features, then
                        Flatten -> fc6 -> Relu -> Dropout -> fc7 -> Relu -> fc8 (Gemm), dynamic batch.
- cnn_classifier_fp16.onnx  the same in float16.
- resnet_tiny.onnx      a ResNet-style net (basic blocks with BatchNorm and skips), GlobalAveragePool ->
                        Flatten -> Gemm, dynamic batch.
- vit_tiny.onnx         a ViT: 4x4 patch embedding Conv, class token, position embeddings, 2 pre-LN encoder
                        layers (MatMul+Add on [B, T, K]), LayerNorm and a Gemm head on the class token.
- gpt_tiny.onnx (+ .onnx.data)  a GPT-style decoder (causal attention, pre-LN, GELU MLP, tied LM head) exported
                        with torch.onnx.export(..., dynamo=True), dynamic batch and sequence, weights in external
                        data as that exporter writes them.
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


class CNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.c2, self.b2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.skip(x))


class ResNetTiny(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class PreLNLayer(nn.Module):
    def __init__(self, d, heads, ff, causal=False):
        super().__init__()
        self.ln1, self.att, self.ln2 = nn.LayerNorm(d), Attention(d, heads), nn.LayerNorm(d)
        self.ff1, self.ff2, self.causal = nn.Linear(d, ff), nn.Linear(ff, d), causal

    def forward(self, x):
        t = x.shape[1]
        bias = torch.zeros(1, 1, t, t, dtype=x.dtype)
        if self.causal:
            bias = torch.triu(torch.full((t, t), -1e4, dtype=x.dtype), diagonal=1)[None, None]
        x = x + self.att(self.ln1(x), bias)
        return x + self.ff2(torch.nn.functional.gelu(self.ff1(self.ln2(x))))


class ViTTiny(nn.Module):
    def __init__(self, d=64, heads=4, ff=128, layers=2, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 65, d) * 0.02)
        self.layers = nn.ModuleList(PreLNLayer(d, heads, ff) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, img):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x)[:, 0])


class GPTTiny(nn.Module):
    def __init__(self, vocab=512, d=64, heads=4, ff=256, layers=2, max_pos=128):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.layers = nn.ModuleList(PreLNLayer(d, heads, ff, causal=True) for _ in range(layers))
        self.ln, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.tok.weight  # tied, as in GPT-2

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t).unsqueeze(0))
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.ln(x))


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

    image_axes = {"image": {0: "batch"}, "logits": {0: "batch"}}
    cnn = CNN().eval()
    export_legacy(cnn, (torch.randn(2, 3, 32, 32),), out("cnn_classifier.onnx"), ["image"], ["logits"], image_axes)
    export_legacy(cnn.half(), (torch.randn(2, 3, 32, 32).half(),), out("cnn_classifier_fp16.onnx"), ["image"],
                  ["logits"], image_axes)
    resnet = ResNetTiny().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in resnet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    export_legacy(resnet, (torch.randn(2, 3, 32, 32),), out("resnet_tiny.onnx"), ["image"], ["logits"], image_axes)
    export_legacy(ViTTiny().eval(), (torch.randn(2, 3, 32, 32),), out("vit_tiny.onnx"), ["image"], ["logits"],
                  image_axes)

    gpt = GPTTiny().eval()
    path = out("gpt_tiny.onnx")
    for stale in (path, path + ".data"):
        if os.path.exists(stale):
            os.remove(stale)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(gpt, (torch.randint(0, 512, (2, 16)),), dynamo=True, opset_version=18,
                                    input_names=["input_ids"], output_names=["logits"],
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq}}, verbose=False)
    program.save(path, external_data=True)
    onnx.checker.check_model(path, full_check=True)
    print(f"wrote {os.path.relpath(path)} (+ {os.path.getsize(path + '.data')} bytes of external data)")


if __name__ == "__main__":
    main()
