"""Arm's Vela on one model: run with the Python of its own venv (onnx2tf pulls TensorFlow 2.19), called by
scripts/bench_npu.py:

    python -m venv V && V/bin/pip install ethos-u-vela==5.2.0 onnx2tf==1.29.24 tensorflow==2.19.0 tf-keras \\
        onnx onnxsim onnx-graphsurgeon sng4onnx psutil
    V/bin/python scripts/vela_sim.py MODEL.onnx WORKDIR

MODEL.onnx has static shapes. onnx2tf writes a full-integer int8 TFLite, calibrated on 20 seeded standard-normal
input sets (4-D inputs as onnx2tf lays them out, NHWC); Vela compiles it for the Ethos-U55-128 and the Ethos-U85-256
and estimates its cycles. Prints one JSON line: the estimated total cycles per accelerator, the operators on the NPU
and on the CPU, and the error, if any.
"""
import argparse
import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np

ACCELERATORS = {"u55": "ethos-u55-128", "u85": "ethos-u85-256"}


def _calibration(model_path: str, folder: str) -> list:
    """onnx2tf's custom input data: for each input, an npy of 20 seeded standard-normal sets (4-D inputs channels
    last, as onnx2tf lays them out) with a mean and std that leave them as they are."""
    import onnx
    rng = np.random.default_rng(0)
    found = []
    for i in onnx.load(model_path).graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if len(dims) == 4:
            dims = [dims[0], dims[2], dims[3], dims[1]]
        integer = i.type.tensor_type.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) if integer else np.float32
        data = rng.integers(0, 2, [20] + dims[1:]).astype(dtype) if integer else \
            rng.standard_normal([20] + dims[1:]).astype(np.float32)   # (token ids and masks: 0 or 1)
        path = os.path.join(folder, f"calib_{len(found)}.npy")
        np.save(path, data)
        found.append([i.name, path, np.zeros([1] * len(dims), dtype), np.ones([1] * len(dims), dtype)])
    return found


def _tflite(model_path: str, folder: str) -> str:
    """onnx2tf in this process: for a model whose inputs are all 3-channel images it would download sample images
    to check its conversion with (no network here), so it gets the calibration sets instead."""
    import onnx2tf
    import onnx2tf.onnx2tf as impl
    calibration = _calibration(model_path, folder)
    impl.download_test_image_data = lambda: np.load(calibration[0][1])
    onnx2tf.convert(input_onnx_file_path=model_path, output_folder_path=os.path.join(folder, "tf"),
                    output_integer_quantized_tflite=True, quant_type="per-channel",
                    custom_input_op_name_np_data_path=calibration, non_verbose=True)
    found = glob.glob(os.path.join(folder, "tf", "*_full_integer_quant.tflite"))
    if not found:
        raise RuntimeError("onnx2tf wrote no full-integer TFLite")
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("workdir")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")  # onnxsim
    vela = os.path.join(os.path.dirname(sys.executable), "vela")
    os.chdir(a.workdir)
    try:
        tflite = _tflite(os.path.abspath(a.model), os.path.abspath(a.workdir))
    except BaseException as exc:  # onnx2tf fails in many ways on transformers: that is the finding
        print(json.dumps({"error": f"onnx2tf: {type(exc).__name__}: {str(exc).strip()[-200:]}"}))
        return
    result = {"error": None}
    for key, config in ACCELERATORS.items():
        out = os.path.join(a.workdir, key)
        run = subprocess.run([vela, tflite, "--accelerator-config", config, "--output-dir", out],
                             capture_output=True, text=True, cwd=a.workdir)
        summary = glob.glob(os.path.join(out, "*_summary_*.csv"))
        if not summary:
            result["error"] = f"vela {config}: " + run.stdout.strip()[-300:]
            break
        row = next(csv.DictReader(open(summary[0])))
        result[key] = int(float(row["cycles_total"]))
        for line in run.stdout.splitlines():
            if line.startswith(("CPU operators", "NPU operators")):
                result[line.split()[0].lower() + "_ops"] = int(line.split("=")[1].split()[0])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
