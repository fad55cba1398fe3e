"""Export randomly initialised encoder-decoders and decoders from transformers (nothing is downloaded; not committed):
the graphs that made fc2conv's old constant walk exponential (T5's relative position buckets, shared by every
layer) and the size NPUs are now asked to run.

    python -m venv V && V/bin/pip install torch==2.13.0 transformers onnx onnxscript   # export only
    V/bin/python scripts/export_decoders.py /tmp/dec [--llama-1b]

t5.onnx       T5ForConditionalGeneration, d_model 64, 2+2 layers, 32 relative buckets: (input_ids,
              decoder_input_ids) -> logits
whisper.onnx  WhisperForConditionalGeneration, d_model 64, 2+2 layers, 80 mel bins: (input_features,
              decoder_input_ids) -> logits
llama.onnx    LlamaForCausalLM, hidden 256, 4 layers, grouped KV heads: (input_ids) -> logits
llama_kv.onnx the same architecture, hidden 64, 2 layers, 256 tokens, as one decode step with a KV cache:
              (input_ids [batch, 1], attention_mask [batch, past + 1], past_key_i, past_value_i [batch, 2, past, 16])
              -> logits; committed as models/hf_llama_kv.onnx
llama_1b.onnx with --llama-1b: TinyLlama's shape (hidden 2048, 22 layers, MLP 5632, 32 heads, 4 KV heads, 32000
              tokens: 1.1B parameters, 4.4 GB), external data
Every input has a dynamic batch and sequence (Whisper's features a dynamic batch); T5 by the legacy exporter
(torch.onnx.export dynamo=False), as most exports in the wild were made, the others by the dynamo exporter.
"""
from __future__ import annotations

import argparse
import os
import warnings

import torch


class _Logits(torch.nn.Module):
    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, first, second=None):
        args = [first] if second is None else [first, second]
        return self.model(**dict(zip(self.names, args)), use_cache=False).logits


def _export(model, names, args, dynamic, path, external=False):
    """The legacy exporter where it can (T5); the dynamo exporter for the models whose mask code uses aten::diff,
    which the legacy one lacks (transformers 5's Whisper and LLaMA)."""
    wrapped = _Logits(model.eval(), names)
    legacy = "t5" in os.path.basename(path)
    dims = {}
    shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name, min=1, max=1024))
                    for axis, name in dynamic[n].items()} for n in names)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if legacy:
            torch.onnx.export(wrapped, tuple(args), path, dynamo=False, opset_version=17, input_names=names,
                              output_names=["logits"], dynamic_axes={**dynamic, "logits": {0: "batch", 1: "seq"}},
                              do_constant_folding=True)
        else:
            torch.onnx.export(wrapped, tuple(args), path, dynamo=True, opset_version=18, input_names=names,
                              output_names=["logits"], dynamic_shapes=shapes, external_data=external)
    data = [f for f in os.listdir(os.path.dirname(path)) if f.startswith(os.path.basename(path))
            and f != os.path.basename(path)]
    size = os.path.getsize(path) + sum(os.path.getsize(os.path.join(os.path.dirname(path), f)) for f in data)
    print("wrote", path, f"{size / 2**20:.1f} MB")


class _DecodeStep(torch.nn.Module):
    """One token with a KV cache given as plain tensors, as optimum and onnxruntime-genai feed decoders."""

    def __init__(self, model, config):
        super().__init__()
        self.model, self.config = model, config

    def forward(self, input_ids, attention_mask, past_key_0, past_value_0, past_key_1, past_value_1):
        from transformers import DynamicCache
        cache = DynamicCache(config=self.config)
        for i, (k, v) in enumerate([(past_key_0, past_value_0), (past_key_1, past_value_1)]):
            cache.update(k, v, i)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache,
                          use_cache=True).logits


def _export_kv(path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    step = _DecodeStep(LlamaForCausalLM(config).eval(), config)
    b, past_len = 2, 5
    args = (torch.randint(0, 256, (b, 1)), torch.ones(b, past_len + 1, dtype=torch.int64),
            *[torch.randn(b, 2, past_len, 16) for _ in range(4)])
    batch, past = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("past", min=1, max=128)
    shapes = ({0: batch}, {0: batch, 1: past + 1}, *[{0: batch, 2: past} for _ in range(4)])
    names = ["input_ids", "attention_mask", "past_key_0", "past_value_0", "past_key_1", "past_value_1"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, args, path, dynamo=True, opset_version=18, input_names=names,
                          output_names=["logits"], dynamic_shapes=shapes, external_data=False)
    print("wrote", path, f"{os.path.getsize(path) / 2**20:.1f} MB")


def main() -> None:
    from transformers import (LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration, WhisperConfig,
                              WhisperForConditionalGeneration)
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--llama-1b", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    torch.manual_seed(0)
    ids = torch.randint(0, 512, (2, 12))
    seq = {0: "batch", 1: "seq"}
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=512, d_model=64, d_kv=16, d_ff=256, num_layers=2,
                                             num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=32))
    _export(t5, ["input_ids", "decoder_input_ids"], [ids, ids[:, :5]],
            {"input_ids": seq, "decoder_input_ids": {0: "batch", 1: "dec_seq"}}, os.path.join(a.folder, "t5.onnx"))
    whisper = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=512, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, num_mel_bins=80,
        max_source_positions=50, max_target_positions=64, pad_token_id=1, bos_token_id=2, eos_token_id=2,
        decoder_start_token_id=3))
    _export(whisper, ["input_features", "decoder_input_ids"], [torch.randn(2, 80, 100), ids[:, :5]],
            {"input_features": {0: "batch"}, "decoder_input_ids": {0: "batch", 1: "dec_seq"}},
            os.path.join(a.folder, "whisper.onnx"))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256))
    _export(llama, ["input_ids"], [ids], {"input_ids": seq}, os.path.join(a.folder, "llama.onnx"))
    _export_kv(os.path.join(a.folder, "llama_kv.onnx"))
    if a.llama_1b:
        big = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                           num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                                           max_position_embeddings=2048))
        _export(big, ["input_ids"], [ids], {"input_ids": seq}, os.path.join(a.folder, "llama_1b.onnx"), True)


if __name__ == "__main__":
    main()
