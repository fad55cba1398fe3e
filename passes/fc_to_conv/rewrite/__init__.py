"""Editing the graph once the rules' checks accepted its layers: which tensors stay images between layers (region),
the rewrite itself (writer: each layer as its kind says, rules/layers.py; conv_inputs: the Conv's weight, bias and
scales), the ways into and out of the image layout (layout), new nodes and constants (emit), the Reshape/Transpose
chains collapsed afterwards (simplify, with chain_math's pure arithmetic), the QDQ form (qdq) and what nothing reads
any more (cleanup)."""
