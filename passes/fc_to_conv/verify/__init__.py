"""Proving a written model computes what the original does: both run on onnxruntime with the same inputs (verdict;
inputs and input_dims make them), outputs compared within calibrated tolerances (compare), each converted layer cut
out and checked on its own (isolate), failing rewrites found and left out (revert), and the written model run on
OpenVINO on request (downstream)."""
