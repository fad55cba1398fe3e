"""fc2conv: rewrite fully connected layers (Gemm, MatMul, MatMul+Add) of an ONNX model into verified convolutions
(1x1, or full-kernel on a classifier head's feature map).

    from passes.fc_to_conv import convert, convert_file, Options
    result = FcToConvPass(layout="spatial").run(model)      # the bare pass, in place, unverified
"""
from .api import Options, convert, convert_file
from .errors import BadInput
from .graph_pass import FcToConvPass
from .report import Report
from .result import PassResult

__all__ = ["Options", "convert", "convert_file", "BadInput", "FcToConvPass", "PassResult", "Report"]
