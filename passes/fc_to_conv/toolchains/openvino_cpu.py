"""OpenVINO's CPU plugin as a toolchain to measure on (the `openvino` extra): latency of one inference, in
microseconds, the model read from ONNX and compiled with static shapes (the verification's first input set's: the
CPU plugin then runs a 1x1 Conv channels-last and cancels the ways' Transposes against its own reorders), f32
inference precision (as the verification compares), the latency hint and `threads` threads (latency.py: the
rounds, the inputs, the statistic).

    python -m passes.fc_to_conv.toolchains.openvino_cpu A.onnx B.onnx --rounds 5 --runs 20 --threads 1
"""
from __future__ import annotations

from .latency import Latency, main as time_models


class OpenvinoCpu(Latency):
    name = "openvino"
    module = "passes.fc_to_conv.toolchains.openvino_cpu"

    needs = Latency.needs + ("openvino",)
    install = "pip install -e \".[openvino]\""


TOOLCHAIN = OpenvinoCpu()


def open_runner(path: str, threads: int, feed):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    model.reshape({p.get_any_name(): list(feed[p.get_any_name()].shape) for p in model.inputs
                   if p.get_any_name() in feed})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    for i, p in enumerate(model.inputs):   # set once: converting a dict of arrays at each call cost 50-100 us and
        request.set_input_tensor(i, ov.Tensor(feed[p.get_any_name()]))   # varied as much (the feed never changes)
    return lambda f: request.infer()


if __name__ == "__main__":
    time_models(None, open_runner)
