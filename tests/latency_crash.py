"""A CPU toolchain's measuring module for tests/test_toolchains_elsewhere.py: onnxruntime's, except that a model
whose file name holds "crash" kills the process (SIGSEGV), as ncnn did on a pnnx conversion of the ViT."""
import os
import signal

from passes.fc_to_conv.toolchains.latency import main as time_models
from passes.fc_to_conv.toolchains.onnxruntime_cpu import open_runner as onnxruntime_runner


def open_runner(path, threads, feed):
    if "crash" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGSEGV)
    return onnxruntime_runner(path, threads, feed)


if __name__ == "__main__":
    time_models(None, open_runner)
