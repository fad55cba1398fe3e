"""Qualcomm's QNN HTP emulator for the tests and scripts/bench_npu.py: the reader lives in the package
(passes/fc_to_conv/toolchains/qnn_htp.py, which --tune uses); this name stays for them, and runs as it did:

    python tests/qnn_htp.py A.onnx [B.onnx ...] [--fp16] [--dim NAME=V ...] [--rounds N]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from passes.fc_to_conv.toolchains.qnn_htp import (  # noqa: E402
    TOTAL_ROW, available, main, measure, median_session, profile_cycles)

__all__ = ["TOTAL_ROW", "available", "main", "measure", "median_session", "profile_cycles"]

if __name__ == "__main__":
    main()
