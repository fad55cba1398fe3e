"""A CPU toolchain's measuring module for tests/test_toolchains_elsewhere.py: onnxruntime's, except that a model
whose file name holds "crash" kills the process (SIGSEGV), as ncnn did on a pnnx conversion of the ViT, after
leaving a temporary folder behind, as pnnx's conversion does."""
import os
import signal
import tempfile

from passes.fc_to_conv.toolchains.latency import main as time_models
from passes.fc_to_conv.toolchains.onnxruntime_cpu import open_runner as onnxruntime_runner


def open_runner(path, threads, feed):
    if "crash" in os.path.basename(path):
        tempfile.mkdtemp(prefix="fc2conv-crash-")
        os.kill(os.getpid(), signal.SIGSEGV)
    return onnxruntime_runner(path, threads, feed)


if __name__ == "__main__":
    time_models(None, open_runner)
