"""ncnn on the CPU, after pnnx's conversion, as a toolchain to measure on: latency of one inference, in
microseconds, fp32 (fp16 storage and arithmetic off, as the verification compares), `threads` threads (0: ncnn's
default), every output extracted (ncnn computes only what the extracted blobs need). latency.py does the rounds,
the inputs and the statistic.

pnnx converts each model once, at the inputs' static shapes, into a temporary folder removed when the measuring
process ends (and with the folder latency.py gives the process, should it crash); a model pnnx writes layers of that ncnn has no kernel for (`Tensor.*`) reads "does not load", with
their names. pnnx brings torch (several GB), so the toolchain is usually a venv of its own:

    python -m venv V && V/bin/pip install pnnx ncnn onnx onnxruntime numpy
    fc2conv in.onnx out.onnx --target ncnn --tune --toolchain-python V/bin/python
    V/bin/python -m passes.fc_to_conv.toolchains.ncnn_cpu A.onnx B.onnx --rounds 5 --runs 20 --threads 1
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Dict, Tuple

import numpy as np

from .latency import Latency, main as time_models

TYPES = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32"}


class NcnnCpu(Latency):
    name = "ncnn"
    module = "passes.fc_to_conv.toolchains.ncnn_cpu"
    needs = Latency.needs + ("pnnx", "ncnn")
    install = ("pip install pnnx ncnn (pnnx brings torch); or in a venv of its own, with numpy, onnx and "
               "onnxruntime beside them, named by --toolchain-python V/bin/python")


TOOLCHAIN = NcnnCpu()

_converted: Dict[str, Tuple[str, str]] = {}   # model path -> its ncnn .param and .bin, converted once


def _convert(path: str, feed) -> Tuple[str, str]:
    if path not in _converted:
        import pnnx
        folder = tempfile.mkdtemp(prefix="fc2conv-ncnn-")
        atexit.register(shutil.rmtree, folder, True)
        param, weights = os.path.join(folder, "m.ncnn.param"), os.path.join(folder, "m.ncnn.bin")
        copy = os.path.join(folder, "m.onnx")   # pnnx writes its side files beside the model and into the cwd
        os.symlink(os.path.abspath(path), copy)
        cwd, stdout = os.getcwd(), os.dup(1)
        os.chdir(folder)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)   # pnnx prints from C++: only the results' JSON lines go to this process's stdout
        try:
            pnnx.convert(copy, input_shapes=[list(v.shape) for v in feed.values()],
                         input_types=[TYPES[v.dtype] for v in feed.values()], fp16=False,
                         ncnnparam=param, ncnnbin=weights)
        finally:
            os.dup2(stdout, 1)
            os.close(quiet)
            os.close(stdout)
            os.chdir(cwd)
        if not os.path.exists(param):
            raise RuntimeError("pnnx wrote no ncnn model")
        _converted[path] = param, weights
    return _converted[path]


def open_runner(path: str, threads: int, feed):
    import ncnn
    import onnx
    param, weights = _convert(path, feed)
    net = ncnn.Net()
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    if threads:
        net.opt.num_threads = threads
    if net.load_param(param) != 0 or net.load_model(weights) != 0:
        with open(param) as f:   # the layer types pnnx wrote that ncnn has no kernel for show as Tensor.*
            unknown = sorted({line.split()[0] for line in f if line.split() and line.split()[0].startswith("Tensor.")})
        raise RuntimeError(f"ncnn cannot load pnnx's output ({', '.join(unknown) or 'load_param failed'})")
    outputs = len(onnx.load(path, load_external_data=False).graph.output)
    inputs = [ncnn.Mat(np.ascontiguousarray(v)).clone() for v in feed.values()]

    def run(_feed):
        with net.create_extractor() as ex:
            for i, mat in enumerate(inputs):
                ex.input(f"in{i}", mat)
            return [ex.extract(f"out{i}")[1] for i in range(outputs)]
    return run


if __name__ == "__main__":
    time_models(None, open_runner)
