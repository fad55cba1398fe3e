"""Held-out models: exports fc2conv was not tuned on, converted with --check-with openvino, one row each.

    pip install torch torchvision            # once; the tests never need them
    python scripts/check_heldout.py [--keep DIR] [--only NAME ...] [--quantize]

Each model is exported into a temporary folder (random weights; nothing is downloaded), converted by the CLI with
`--check-with openvino`, and the written file is checked to be byte for byte what onnx.save writes. Printed per
model: FC layers converted, the worst norm_err of onnxruntime's verification and of OpenVINO (CPU, f32) against
the original on onnxruntime, and whether the bytes are canonical. Exit 1 if any row fails.

--quantize: each export is first quantized by onnxruntime's quantizer (QDQ uint8 per channel, random calibration
data), the form edge NPUs run; the onnxruntime column is then the worst difference in quantization steps where an
output is quantized.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import onnx
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from export_torch_models import BertTiny, CNN, GPTTiny, ViTTiny, mlp  # noqa: E402


def legacy(model, args, path, inputs, outputs, dynamic, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, path, dynamo=False, opset_version=opset, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)


def dynamo(model, args, path, inputs, outputs, shapes, opset=18, external=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, args, dynamo=True, opset_version=opset, input_names=inputs,
                                    output_names=outputs, dynamic_shapes=shapes, verbose=False)
    program.save(path, external_data=external)


def models():
    """(name, exporter) pairs; each exporter writes the model to the path it is given."""
    import torchvision
    torch.manual_seed(1)
    image = {"image": {0: "batch"}, "logits": {0: "batch"}}
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("seq", min=2, max=128)
    ids = torch.randint(0, 1000, (2, 16))
    bert_dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                "hidden": {0: "batch", 1: "seq"}, "pooled": {0: "batch"}}
    wide_bert = BertTiny(vocab=2000, d=192, heads=6, ff=768, layers=3).eval()
    return [
        ("mlp_wide_opset13", lambda p: legacy(mlp(64, (256, 256, 128), 7).eval(), (torch.randn(3, 64),), p, ["x"],
                                              ["logits"], {"x": {0: "batch"}, "logits": {0: "batch"}}, 13)),
        ("mlp_dynamo", lambda p: dynamo(mlp().eval(), (torch.randn(3, 32),), p, ["x"], ["logits"],
                                        {"input": {0: batch}})),
        ("bert_wide_fp32", lambda p: legacy(wide_bert, (ids, torch.ones(2, 16, dtype=torch.int64)), p,
                                            ["input_ids", "attention_mask"], ["hidden", "pooled"], bert_dyn, 17)),
        ("bert_wide_fp16", lambda p: legacy(BertTiny(vocab=2000, d=192, heads=6, ff=768, layers=3).half().eval(),
                                            (ids, torch.ones(2, 16, dtype=torch.int64)), p,
                                            ["input_ids", "attention_mask"], ["hidden", "pooled"], bert_dyn, 17)),
        ("bert_dynamo_external", lambda p: dynamo(BertTiny().eval(), (ids, torch.ones(2, 16, dtype=torch.int64)),
                                                  p, ["input_ids", "attention_mask"], ["hidden", "pooled"],
                                                  {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                                                  external=True)),
        ("vit_dynamo", lambda p: dynamo(ViTTiny().eval(), (torch.randn(2, 3, 32, 32),), p, ["image"], ["logits"],
                                        {"img": {0: batch}})),
        ("gpt_opset20", lambda p: dynamo(GPTTiny().eval(), (torch.randint(0, 512, (2, 16)),), p, ["input_ids"],
                                         ["logits"], {"input_ids": {0: batch, 1: seq}}, opset=20)),
        ("cnn_opset11", lambda p: legacy(CNN().eval(), (torch.randn(2, 3, 32, 32),), p, ["image"], ["logits"],
                                         image, 11)),
        ("resnet18", lambda p: legacy(torchvision.models.resnet18().eval(), (torch.randn(1, 3, 224, 224),), p,
                                      ["image"], ["logits"], image, 17)),
        ("mobilenet_v2", lambda p: legacy(torchvision.models.mobilenet_v2().eval(), (torch.randn(1, 3, 224, 224),),
                                          p, ["image"], ["logits"], image, 17)),
        ("alexnet", lambda p: legacy(torchvision.models.alexnet().eval(), (torch.randn(1, 3, 224, 224),), p,
                                     ["image"], ["logits"], image, 17)),
        ("lenet5", lambda p: legacy(nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)).eval(),
            (torch.randn(1, 1, 28, 28),), p, ["image"], ["logits"], image, 17)),
        ("vit_b_16_small", lambda p: legacy(torchvision.models.VisionTransformer(
            image_size=64, patch_size=16, num_layers=2, num_heads=4, hidden_dim=128, mlp_dim=256).eval(),
            (torch.randn(1, 3, 64, 64),), p, ["image"], ["logits"], image, 17)),
    ]


def quantize(src: str, folder: str) -> str:
    """`src` quantized by onnxruntime's quantize_static: QDQ, uint8 activations, int8 weights per channel."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model, rng = onnx.load(src, load_external_data=False), np.random.default_rng(0)
    sets = []
    for _ in range(4):
        feed = {}
        for i in model.graph.input:
            dims = [d.dim_value if d.dim_value > 0 else 2 for d in i.type.tensor_type.shape.dim]
            feed[i.name] = (rng.integers(0, 100, dims).astype(np.int64) if i.type.tensor_type.elem_type == 7
                            else rng.standard_normal(dims).astype(np.float32))
        sets.append(feed)

    class Reader(CalibrationDataReader):
        it = iter(sets)

        def get_next(self):
            return next(self.it, None)
    out = src[:-5] + "_qdq.onnx"
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        os.chdir(cwd)
    return out


def canonical(path: str) -> bool:
    data = open(path, "rb").read()
    return onnx.load_model_from_string(data).SerializeToString() == data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="export into this folder and keep the models")
    ap.add_argument("--only", nargs="*", help="only these names")
    ap.add_argument("--quantize", action="store_true", help="quantize each export (QDQ u8 per channel) first")
    a = ap.parse_args()
    folder = a.keep or tempfile.mkdtemp(prefix="fc2conv-heldout-")
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=ROOT)
    failed = 0
    print(f"{'model':24s} {'FC converted':>12s} {'onnxruntime':>12s} {'OpenVINO':>10s}  canonical")
    try:
        for name, export in models():
            if a.only and name not in a.only:
                continue
            src, out, rep = (os.path.join(folder, f"{name}{s}") for s in (".onnx", "_conv.onnx", ".json"))
            export(src)
            if a.quantize:
                src = quantize(src, folder)
            r = subprocess.run([sys.executable, "-m", "passes.fc_to_conv", src, out, "--check-with", "openvino",
                                "--report", rep, "--quiet"], env=env, capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(rep):
                failed += 1
                print(f"{name:24s} FAILED (exit {r.returncode}): {(r.stderr.strip().splitlines() or [''])[-1][:200]}")
                continue
            report = json.load(open(rep))
            total = len(report["converted"]) + len(report["skipped"]) + len(report["reverted"])
            outputs = report["verification"]["outputs"]
            ort = max(o["max_abs"] / o["step"] if a.quantize and o["step"] else o["norm_err"] for o in outputs)
            ov = max(o["norm_err"] for o in report["downstream"]["outputs"])
            same = canonical(out)
            failed += not same
            print(f"{name:24s} {len(report['converted']):>5d} of {total:<4d} {ort:12.1e} {ov:10.1e}  "
                  f"{'yes' if same else 'NO'}")
    finally:
        if not a.keep:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
