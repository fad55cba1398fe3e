"""What the pass reads of a graph, editing nothing: its facts (graph_index: producers, readers, names, attributes),
its constant tensors (constants: resolved and folded on demand) and its shapes (shapes: inference on a weightless
copy)."""
