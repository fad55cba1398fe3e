"""Export randomly initialised vision transformers from torchvision and timm (nothing is downloaded; not committed:
Swin-T alone is 110 MB), for the NPU benchmarks of issue 18 (scripts/bench_npu.py qnn).

    python -m venv V && V/bin/pip install torch==2.14.1 torchvision==0.29.1 timm onnx onnxscript   # export only
    V/bin/python scripts/export_vision.py /tmp/vis
    python scripts/bench_npu.py qnn /tmp/vis/*.onnx

swin_t.onnx       torchvision's swin_t (28M parameters): image [1, 3, 224, 224] -> logits [1, 1000]
deit_tiny.onnx    timm's deit_tiny_patch16_224 (5.7M parameters): image [1, 3, 224, 224] -> logits [1, 1000]
Static shapes (QNN's HTP needs them); the legacy exporter (torch.onnx.export dynamo=False), opset 17.
"""
from __future__ import annotations

import argparse
import os
import warnings

import torch


def export(model: torch.nn.Module, path: str) -> None:
    model.eval()
    image = torch.randn(1, 3, 224, 224)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (image,), path, input_names=["image"], output_names=["logits"], opset_version=17,
                          dynamo=False)
    print(path, f"{os.path.getsize(path) / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    torch.manual_seed(0)
    import timm
    import torchvision
    export(torchvision.models.swin_t(weights=None), os.path.join(a.folder, "swin_t.onnx"))
    export(timm.create_model("deit_tiny_patch16_224", pretrained=False), os.path.join(a.folder, "deit_tiny.onnx"))


if __name__ == "__main__":
    main()
