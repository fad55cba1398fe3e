"""Export a small randomly initialised diffusers UNet2DConditionModel (its attention blocks hold the FC layers,
its ResNet blocks the convolutions), the model issue 25 measured the verification's memory on. Not committed.

    python -m venv V && V/bin/pip install torch==2.13.0 diffusers transformers onnx onnxscript   # export only
    V/bin/python scripts/export_unet.py /tmp/unet.onnx

Inputs: sample [batch, 4, 64, 64], timestep [1], encoder_hidden_states [batch, 77, 64]; output: noise [batch, 4,
64, 64]. block_out_channels (32, 64), 2 attention heads, cross-attention width 64.
"""
import sys
import warnings

import torch


class _Noise(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def main() -> None:
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                                attention_head_dim=8, norm_num_groups=8)
    args = (torch.randn(1, 4, 64, 64), torch.tensor([10.0]), torch.randn(1, 77, 64))
    batch = torch.export.Dim("batch", min=1, max=8)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_Noise(unet.eval()), args, dynamo=True, opset_version=18,
                                    input_names=["sample", "timestep", "encoder_hidden_states"],
                                    output_names=["noise"], dynamic_shapes=({0: batch}, None, {0: batch}))
    program.save(sys.argv[1], external_data=False)
    print("wrote", sys.argv[1])


if __name__ == "__main__":
    main()
