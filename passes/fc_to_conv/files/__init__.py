"""Model files: refusing malformed models (validate), reading and writing safely (model_io), and putting the new
weights where they go, external data included (sinks, external), in the bytes onnx.save would write (canonical)."""
