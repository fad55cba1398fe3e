"""onnxruntime's CPU EP as a toolchain to measure on: latency of one inference, in microseconds, with the
runtime's default graph optimizations (what a user deploying on onnxruntime gets) and `threads` intra-op threads
(latency.py: the rounds, the inputs, the statistic).

    python -m passes.fc_to_conv.toolchains.onnxruntime_cpu A.onnx B.onnx --rounds 5 --runs 20 --threads 1
"""
from __future__ import annotations

from .latency import Latency, main as time_models


class OnnxruntimeCpu(Latency):
    name = "onnxruntime"
    module = "passes.fc_to_conv.toolchains.onnxruntime_cpu"


TOOLCHAIN = OnnxruntimeCpu()


def open_runner(path: str, threads: int, feed):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda f: session.run(None, f)


if __name__ == "__main__":
    time_models(None, open_runner)
