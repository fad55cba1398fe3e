"""Export the transformer families issue 24 found slower after conversion (random weights; nothing is downloaded;
not committed): Falcon (multi-query attention), SigLIP's vision tower (with its MultiheadAttention pooling head),
Gemma2, LeViT, DeBERTa-v2, BART and GPT-NeoX, each tiny (width 64, 2 layers) with a dynamic batch and sequence.

    python -m venv V && V/bin/pip install torch==2.13.0 transformers onnx onnxscript   # export only
    V/bin/python scripts/export_families.py /tmp/families [--only falcon gemma2 ...]

Text models take (input_ids [batch, seq], attention_mask [batch, seq]) and give their last hidden state (decoders
their logits); vision models take pixel_values [batch, 3, 64, 64] (LeViT 224: its stages need it). The dynamo
exporter at opset 18, as torch writes today. scripts/bench_models.py --extra times them.
"""
from __future__ import annotations

import argparse
import os
import warnings

import torch


class _Text(torch.nn.Module):
    def __init__(self, model, logits):
        super().__init__()
        self.model, self.logits = model, logits

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.logits if self.logits else out.last_hidden_state


class _Image(torch.nn.Module):
    def __init__(self, model, field):
        super().__init__()
        self.model, self.field = model, field

    def forward(self, pixel_values):
        return getattr(self.model(pixel_values=pixel_values), self.field)


def _configs():
    import transformers as t
    small = dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=256, max_position_embeddings=128)
    return {
        "falcon": lambda: _Text(t.FalconForCausalLM(t.FalconConfig(
            vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
            new_decoder_architecture=False, parallel_attn=True, alibi=False)), True),
        "gemma2": lambda: _Text(t.Gemma2ForCausalLM(t.Gemma2Config(
            **small, num_key_value_heads=2, head_dim=16, sliding_window=8, query_pre_attn_scalar=16)), True),
        "gpt_neox": lambda: _Text(t.GPTNeoXForCausalLM(t.GPTNeoXConfig(**small)), True),
        "deberta_v2": lambda: _Text(t.DebertaV2Model(t.DebertaV2Config(
            **small, relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"])), False),
        "bart": lambda: _Text(t.BartModel(t.BartConfig(
            vocab_size=512, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=128)),
            False),
        "siglip_vision": lambda: _Image(t.SiglipVisionModel(t.SiglipVisionConfig(
            hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, image_size=64,
            patch_size=16)), "pooler_output"),
        "levit": lambda: _Image(t.LevitModel(t.LevitConfig(
            image_size=224, hidden_sizes=[64, 96, 128], num_attention_heads=[2, 3, 4], depths=[1, 1, 1],
            key_dim=[16, 16, 16], mlp_ratio=[2, 2, 2], attention_ratio=[2, 2, 2])), "pooler_output"),
    }


def export(name, model, folder) -> str:
    path = os.path.join(folder, name + ".onnx")
    batch = torch.export.Dim("batch", min=1, max=64)
    if isinstance(model, _Image):
        size = 224 if name == "levit" else 64
        args, names, shapes = (torch.randn(2, 3, size, size),), ["pixel_values"], ({0: batch},)
    else:
        seq = torch.export.Dim("seq", min=2, max=128)
        args = (torch.randint(0, 512, (2, 16)), torch.ones(2, 16, dtype=torch.int64))
        names, shapes = ["input_ids", "attention_mask"], ({0: batch, 1: seq}, {0: batch, 1: seq})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), args, dynamo=True, opset_version=18, input_names=names,
                                    output_names=["output"], dynamic_shapes=shapes, verbose=False)
    program.save(path, external_data=False)
    print("wrote", path, f"{os.path.getsize(path) / 2**20:.2f} MB")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    for name, make in _configs().items():
        if a.only and name not in a.only:
            continue
        torch.manual_seed(0)
        try:
            export(name, make(), a.folder)
        except Exception as e:  # one family failing to export does not stop the others
            print("FAILED", name, type(e).__name__, str(e).splitlines()[0][:200])


if __name__ == "__main__":
    main()
