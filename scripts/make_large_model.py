"""Write a synthetic FC model larger than 2 GB with its weights in external data, without ever holding more than
one weight in memory.

    python scripts/make_large_model.py OUT.onnx [--gib 2.1]

Layers: x [batch, 8192] -> MatMul [8192, 16384] + bias -> Relu -> MatMul [16384, 8192] + bias -> Relu -> ...
(512 MiB per fp32 weight), as many as needed to pass the size asked for. tests/test_large_model.py uses build().
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from onnx import TensorProto, helper


def build(path: str, gib: float = 2.1, wide: int = 16384, narrow: int = 8192) -> int:
    """Write the model; returns the size of model file plus data in bytes."""
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    location = name + ".data"
    rng = np.random.default_rng(0)
    nodes, inits, offset = [], [], 0
    layer_bytes = wide * narrow * 4
    layers = max(1, int(np.ceil(gib * 2**30 / layer_bytes)))
    x, k = "x", narrow
    with open(os.path.join(folder, location), "wb") as data:
        for i in range(layers):
            n = wide if k == narrow else narrow
            for tname, shape in ((f"w{i}", (k, n)), (f"b{i}", (n,))):
                # uniform in +-1/sqrt(k): outputs stay O(1) through the layers
                value = ((rng.random(shape, dtype=np.float32) * 2 - 1) / np.sqrt(shape[0] if len(shape) == 2 else 1))
                blob = value.astype(np.float32).tobytes()
                data.write(blob)
                t = TensorProto(name=tname, data_type=TensorProto.FLOAT, dims=shape,
                                data_location=TensorProto.EXTERNAL)
                for key, val in (("location", location), ("offset", str(offset)), ("length", str(len(blob)))):
                    t.external_data.add(key=key, value=val)
                inits.append(t)
                offset += len(blob)
                del value, blob
            nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"], name=f"fc{i}_bias")]
            x, k = f"h{i}", n
            if i < layers - 1:
                nodes.append(helper.make_node("Relu", [x], [f"a{i}"]))
                x = f"a{i}"
    g = helper.make_graph(nodes, "large", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", narrow])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", k])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return os.path.getsize(path) + offset


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=2.1)
    a = ap.parse_args()
    print(f"wrote {a.out}: {build(a.out, a.gib) / 2**30:.2f} GiB")
