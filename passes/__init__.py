"""ONNX graph passes. `passes.fc_to_conv` rewrites fully connected layers into convolutions."""
