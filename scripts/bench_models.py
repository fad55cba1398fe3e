"""Latency of converted models against their originals on onnxruntime CPU (default graph optimizations), on
OpenVINO's CPU plugin (f32), or on ncnn after pnnx's conversion (fp32).

    python scripts/bench_models.py [--runs 300] [--threads 1] [--models bert_tiny ...] [--bert-base /tmp/bert_base.onnx]
                                   [--backend onnxruntime|openvino|ncnn]

With --backend openvino the last columns count the layout layers (Reshape, Transpose, Reorder) that OpenVINO ran
for the original and for the converted model (its per-layer profile, PERF_COUNT: the layers whose status is
EXECUTED; layers it optimized out, such as "fake" reorders that only re-view memory, are not counted).

For each model: original and converted median latency over many runs (interleaved in rounds, so that a noisy
machine slows both alike), their ratio, the allowance (1.05x, or the original + 20 us where that is more), and
the Reshape/Transpose nodes the conversion added. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

from passes.fc_to_conv import Options, convert
from passes.fc_to_conv.verify.inputs import make_feeds
from passes.fc_to_conv.files.model_io import load
from passes.fc_to_conv.graph.shapes import infer

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [  # model, fixed input shapes, label
    ("bert_tiny", {"input_ids": [1, 128], "attention_mask": [1, 128]}, "BERT-style encoder, batch 1, seq 128"),
    ("gpt_tiny", {"input_ids": [1, 128]}, "GPT-style decoder, batch 1, seq 128"),
    ("hf_distilbert", {"input_ids": [1, 128], "attention_mask": [1, 128]}, "HF DistilBERT, batch 1, seq 128"),
    ("hf_gpt2", {"input_ids": [1, 128]}, "HF GPT-2, batch 1, seq 128"),
    ("vit_tiny", {"image": [1, 3, 32, 32]}, "ViT, batch 1"),
    ("cnn_classifier", {"image": [1, 3, 32, 32]}, "CNN with FC head, batch 1"),
    ("mlp", {"x": [1, 32]}, "MLP, batch 1"),
    ("mlp", {"x": [64, 32]}, "MLP, batch 64"),
]
QUANTIZED = [  # --quantized: models/quantized/ (scripts/make_quantized_models.py)
    ("quantized/mlp_qdq_u8", {"x": [1, 32]}, "MLP, QDQ u8 per tensor, batch 1"),
    ("quantized/cnn_qdq_u8_pc", {"image": [1, 3, 32, 32]}, "CNN, QDQ u8 per channel, batch 1"),
    ("quantized/vit_qdq_u8_pc", {"image": [1, 3, 32, 32]}, "ViT, QDQ u8 per channel, batch 1"),
    ("quantized/bert_qdq_u16", {"input_ids": [1, 128], "attention_mask": [1, 128]}, "BERT, QDQ u16, seq 128"),
    ("quantized/mlp_qoperator", {"x": [1, 32]}, "MLP, QOperator, batch 1"),
    ("quantized/cnn_qoperator", {"image": [1, 3, 32, 32]}, "CNN, QOperator, batch 1"),
    ("quantized/mlp_tensorrt", {"x": [1, 32]}, "MLP, TensorRT-style Q/DQ, batch 1"),
    ("quantized/bert_modelopt", {"input_ids": [1, 128], "attention_mask": [1, 128]},
     "BERT, ModelOpt-style Q/DQ, seq 128"),
    ("quantized/vit_modelopt", {"image": [1, 3, 32, 32]}, "ViT, ModelOpt-style Q/DQ, batch 1"),
]


THREADS = 1
BACKEND = "onnxruntime"
STATIC = False
LAYOUT_LAYERS = ("Reshape", "Transpose", "Reorder")


class _OpenVINO:
    """An OpenVINO CPU compiled model with onnxruntime's run(None, feed) interface."""

    def __init__(self, model: onnx.ModelProto, feed):
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if THREADS:
            config["INFERENCE_NUM_THREADS"] = THREADS
        read = core.read_model(model.SerializeToString(), b"")
        if STATIC:  # fixed input shapes, as a deployment that knows them compiles the model
            read.reshape({name: list(value.shape) for name, value in feed.items()})
        self.compiled = core.compile_model(read, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.profiled = core.compile_model(read, "CPU", {**config, "PERF_COUNT": True}).create_infer_request()

    def run(self, _, feed):
        return list(self.request.infer(feed).values())

    def layout_layers(self, feed) -> int:
        """The Reshape, Transpose and Reorder layers that ran (PERF_COUNT status EXECUTED): the compiled graph also
        lists layers that do not run, such as reorders marked "fake" (a new view of the same memory)."""
        self.profiled.infer(feed)
        return sum(p.status == p.Status.EXECUTED and p.node_type in LAYOUT_LAYERS for p in self.profiled.profiling_info)


class _NCNN:
    """The model converted by pnnx (`pip install pnnx ncnn`, benchmark dependencies only) and run by ncnn, fp32,
    with onnxruntime's run(None, feed) interface; the shapes are fixed at conversion, from the feed."""

    def __init__(self, model: onnx.ModelProto, feed):
        import ncnn
        import pnnx
        self.folder = tempfile.mkdtemp(prefix="fc2conv-ncnn-")
        path = os.path.join(self.folder, "m.onnx")
        onnx.save(model, path)
        types = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32"}
        self.param = os.path.join(self.folder, "m.ncnn.param")
        cwd = os.getcwd()
        os.chdir(self.folder)  # pnnx writes its side files into the working folder
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                pnnx.convert(path, input_shapes=[list(v.shape) for v in feed.values()],
                             input_types=[types[v.dtype] for v in feed.values()], fp16=False,
                             ncnnparam=self.param, ncnnbin=os.path.join(self.folder, "m.ncnn.bin"))
        finally:
            os.chdir(cwd)
        self.net = ncnn.Net()
        self.net.opt.use_fp16_packed = self.net.opt.use_fp16_storage = self.net.opt.use_fp16_arithmetic = False
        if THREADS:
            self.net.opt.num_threads = THREADS
        if self.net.load_param(self.param) != 0 or self.net.load_model(os.path.join(self.folder, "m.ncnn.bin")) != 0:
            unknown = ""
            with open(self.param) as f:   # the layer types pnnx wrote that ncnn has no kernel for show as Tensor.*
                unknown = ", ".join(sorted({line.split()[0] for line in f if line.split()[0].startswith("Tensor.")}))
            raise RuntimeError(f"ncnn cannot load pnnx's output ({unknown or 'load_param failed'})")
        self.ncnn = ncnn

    def run(self, _, feed):
        with self.net.create_extractor() as ex:
            for i, value in enumerate(feed.values()):
                ex.input(f"in{i}", self.ncnn.Mat(np.ascontiguousarray(value), batch_index=233).clone())
            _, out = ex.extract("out0")
            return [out.numpy(batch_index=233)]

    def layout_layers(self, _feed=None) -> int:
        with open(self.param) as f:
            return sum(line.split()[0] in ("Permute", "Reshape", "Flatten") for line in f.readlines()[2:] if line.split())


def session(model: onnx.ModelProto, feed=None):
    if BACKEND == "openvino":
        return _OpenVINO(model, feed)
    if BACKEND == "ncnn":
        return _NCNN(model, feed)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def median_us(sessions, feed, runs, rounds=10):
    times = [[] for _ in sessions]
    for s in sessions:
        for _ in range(20):
            s.run(None, feed)
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            for _ in range(runs // rounds):
                t = time.perf_counter()
                s.run(None, feed)
                times[i].append(time.perf_counter() - t)
    return [statistics.median(t) * 1e6 for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (0: onnxruntime's default)")
    ap.add_argument("--bert-base", metavar="PATH", help="also time scripts/export_bert_base.py's model")
    ap.add_argument("--quantized", action="store_true", help="the quantized models of models/quantized/ instead")
    ap.add_argument("--backend", choices=("onnxruntime", "openvino", "ncnn"), default="onnxruntime")
    ap.add_argument("--target", default="onnxruntime", help="fc2conv's --target for the conversion")
    ap.add_argument("--static", action="store_true",
                    help="OpenVINO: compile for the benchmark's fixed input shapes (default: the model's own dims)")
    ap.add_argument("--extra", nargs="*", default=[], metavar="PATH:NAME=DxD,...",
                    help="more models, e.g. /tmp/bert_qdq.onnx:input_ids=1x128,attention_mask=1x128")
    a = ap.parse_args()
    global THREADS, BACKEND, STATIC
    THREADS, BACKEND, STATIC = a.threads, a.backend, a.static
    threads = f"{a.threads} thread(s)" if a.threads else "default threads"
    print(f"converted with --target {a.target}")
    if BACKEND == "openvino":
        import openvino
        shapes = "static input shapes" if a.static else "the model's own (dynamic) input shapes"
        print(f"OpenVINO {openvino.__version__.split('-')[0]} CPU, f32, {threads}, {shapes}; median of {a.runs} runs"
              " each\n")
        print("| model | original | converted | ratio | allowed | layout layers run: original | converted |")
    elif BACKEND == "ncnn":
        import ncnn
        print(f"ncnn {ncnn.__version__} via pnnx, fp32, {threads}; median of {a.runs} runs each\n")
        print("| model | original | converted | ratio | allowed | Permute/Reshape layers: original | converted |")
    else:
        print(f"onnxruntime {ort.__version__} CPU, {threads}, default optimizations; median of {a.runs} runs each\n")
        print("| model | original | converted | ratio | allowed | Reshape added | Transpose added |")
    print("|---|---|---|---|---|---|---|")
    cases = QUANTIZED if a.quantized else CASES
    for extra in a.extra:
        path, _, dims = extra.partition(":")
        shapes = {k: [int(d) for d in v.split("x")] for k, v in (p.split("=") for p in dims.split(",") if p)}
        cases = cases + [(path, shapes, os.path.basename(path))]
    if a.bert_base:
        cases = CASES + [(a.bert_base, {"input_ids": [1, 128], "attention_mask": [1, 128]},
                          "BERT-base (110M), batch 1, seq 128")]
    for name, shapes, label in cases:
        if a.models and name not in a.models:
            continue
        path = name if name.endswith(".onnx") else os.path.join(HERE, "..", "models", name + ".onnx")
        model, _ = load(path)
        new, report = convert(model, Options(input_shapes=shapes, input_sets=1, target=a.target))
        assert report.verified, report.text()
        feed = make_feeds(model, infer(model), 1, fixed=shapes)[0]
        try:
            sessions = [session(model, feed), session(new, feed)]
        except Exception as exc:  # a backend that cannot take the model: say so and go on
            print(f"| {label} | {BACKEND} could not load it: {str(exc).splitlines()[0][:80]} | | | | | |")
            continue
        base, conv = median_us(sessions, feed, a.runs)
        allowed = max(1.05 * base, base + 20)
        added = {op: report.ops_after.get(op, 0) - report.ops_before.get(op, 0) for op in ("Reshape", "Transpose")}
        mark = "" if conv <= allowed else " (over)"
        last = (f"{sessions[0].layout_layers(feed)} | {sessions[1].layout_layers(feed)}" if BACKEND != "onnxruntime"
                else f"{added['Reshape']:+d} | {added['Transpose']:+d}")
        print(f"| {label} | {base:.0f} us | {conv:.0f} us | {conv / base:.3f}x{mark} | {allowed:.0f} us | {last} |")


if __name__ == "__main__":
    main()
