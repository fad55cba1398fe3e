"""Tiny random-weight LLM decoders written by onnxruntime-genai's model builder, the files LLM users deploy
(issue 25): LLaMA, Qwen2, Phi-3, Gemma2 configs, in fp32, int4, int8 and int4 QDQ. Not committed (the builder and
torch are large); run in a venv with torch, transformers and onnxruntime-genai:

    python scripts/export_genai.py OUT_DIR [--archs llama qwen2 phi3 gemma2] [--precisions fp32 int4 int8 int4_qdq]

writes OUT_DIR/<arch>_<precision>/model.onnx (with genai_config.json beside it), then run fc2conv on each.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

SMALL = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=512, max_position_embeddings=256)


def checkpoint(arch: str, folder: str) -> None:
    import torch
    import transformers as t
    configs = {"llama": (t.LlamaConfig, t.LlamaForCausalLM, {}),
               "qwen2": (t.Qwen2Config, t.Qwen2ForCausalLM, {}),
               "phi3": (t.Phi3Config, t.Phi3ForCausalLM, {"pad_token_id": 0}),
               "gemma2": (t.Gemma2Config, t.Gemma2ForCausalLM, {"head_dim": 32, "sliding_window": 64})}
    config_cls, model_cls, extra = configs[arch]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SMALL, **extra)).eval()
    model.save_pretrained(folder)
    t.PreTrainedTokenizerFast(tokenizer_object=_tokenizer()).save_pretrained(folder)


def _tokenizer():
    from tokenizers import Tokenizer, models
    return Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))


def build(folder: str, out: str, precision: str) -> int:
    args = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", folder, "-o", out, "-e", "cpu",
            "-c", os.path.join(out, "cache"), "-p", precision.replace("_qdq", "")]
    if precision.endswith("_qdq"):
        args += ["--extra_options", "use_qdq=true"]
    return subprocess.run(args).returncode


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--archs", nargs="*", default=["llama", "qwen2", "phi3", "gemma2"])
    ap.add_argument("--precisions", nargs="*", default=["fp32", "int4", "int8", "int4_qdq"])
    a = ap.parse_args(argv)
    for arch in a.archs:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint(arch, folder)
            for precision in a.precisions:
                out = os.path.join(a.out, f"{arch}_{precision}")
                rc = build(folder, out, precision)
                print(f"{arch} {precision}: {'wrote ' + out if rc == 0 else f'builder failed ({rc})'}", flush=True)


if __name__ == "__main__":
    main()
