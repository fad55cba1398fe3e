"""fc2conv: rewrite fully connected layers (Gemm, MatMul, MatMul+Add) of an ONNX model into verified 1x1 Convs.

    from passes.fc_to_conv import convert, convert_file, Options
"""
from .api import Options, convert, convert_file
from .errors import BadInput
from .report import Report

__all__ = ["Options", "convert", "convert_file", "BadInput", "Report"]
