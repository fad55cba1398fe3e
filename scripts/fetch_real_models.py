"""Real trained models from other projects, taken from the pip wheels that ship them (never at test time):

    python scripts/fetch_real_models.py            # refresh models/real/ (the small ones the tests use)
    python scripts/fetch_real_models.py --check    # and convert every model of the list, one row each

`pip download --no-deps` fetches each wheel into a temporary folder; the models are read out of it. Committed
under models/real/ (see models/real/README.md for their licences): the PP-OCR direction classifier
(rapidocr-onnxruntime, Apache-2.0) and silero-vad (MIT). The others are too large to commit (the recognizers are
about 10 MB) and are only converted by --check: PP-OCRv4 and v3 recognizers and detectors, silero-vad's other
exports, magika's classifier, ddddocr's OCR and detector models, nudenet's detector (not used to tune fc2conv:
held out).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "models", "real")

WHEELS = {   # package==version: the models inside it, by path; True: committed to models/real/
    "rapidocr-onnxruntime==1.4.4": {
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": True,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx": False,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx": False},
    "rapidocr-onnxruntime==1.2.3": {
        "rapidocr_onnxruntime/models/ch_PP-OCRv3_rec_infer.onnx": False,
        "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx": False},
    "silero-vad==6.2.3": {
        "silero_vad/data/silero_vad.onnx": True,
        "silero_vad/data/silero_vad_16k_op15.onnx": False,
        "silero_vad/data/silero_vad_half.onnx": False,
        "silero_vad/data/silero_vad_op18_ifless.onnx": False},
    # issue 19's real models: a file-type classifier (OneHot over byte values), OCR (one dynamically quantized),
    # a detector
    "magika==1.0.3": {"magika/models/standard_v3_3/model.onnx": False},
    "ddddocr==1.6.1": {"ddddocr/common.onnx": False, "ddddocr/common_old.onnx": False,
                       "ddddocr/common_det.onnx": False},
    "nudenet==3.4.2": {"nudenet/320n.onnx": False},
}


def fetch(tmp: str):
    """Yield (name, path, committed) for every model of WHEELS, extracted into `tmp`."""
    for package, members in WHEELS.items():
        folder = os.path.join(tmp, package.replace("==", "-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", package, "-d", folder],
                       check=True)
        wheel = next(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as z:
            for member, committed in members.items():
                z.extract(member, folder)
                yield os.path.basename(member), os.path.join(folder, member), committed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="convert every model and print a row each")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fc2conv-real-") as tmp:
        rows = []
        for name, path, committed in fetch(tmp):
            if committed:
                shutil.copy(path, os.path.join(OUT, name))
                print(f"wrote models/real/{name} ({os.path.getsize(path)} bytes)")
            if a.check:
                rows.append((name, convert(path, tmp)))
        for name, row in rows:
            print(f"{name:40s} {row}")


def convert(path: str, tmp: str) -> str:
    out, rep = os.path.join(tmp, "out.onnx"), os.path.join(tmp, "r.json")
    r = subprocess.run([sys.executable, "-m", "passes.fc_to_conv", path, out, "--quiet", "--report", rep],
                       cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    if r.returncode != 0:
        return f"FAILED (exit {r.returncode}): {(r.stderr.strip().splitlines() or [''])[-1][:150]}"
    report = json.load(open(rep))
    total = len(report["converted"]) + len(report["skipped"])
    inputs = report["verification"].get("inputs") or "the first inputs generated"
    return f"converted {len(report['converted'])} of {total}, verified on {inputs}"


if __name__ == "__main__":
    main()
