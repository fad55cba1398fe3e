"""Export small models with other frameworks' exporters into models/ (random weights, no downloads):

    pip install tensorflow-cpu tf2onnx jax jax2onnx      # once; the tests never need them
    python scripts/export_other_frameworks.py

- keras_encoder.onnx: Keras Dense layers on [batch, 16, 32] with LayerNormalization, pooling and a Dense head,
  through tf2onnx (made with TensorFlow 2.21.0, tf2onnx 1.17.0, opset 17): tf2onnx writes a Dense on a 3-D input
  as Tensordot, i.e. Reshape -> MatMul -> Reshape(Concat(Gather(Shape(x)), [N])) -> Add (BiasAdd).
- jax_mlp.onnx: jnp.einsum("bsk,kn->bsn") + bias -> relu -> @, through jax2onnx (made with jax 0.10.2,
  jax2onnx 0.17.1, opset 23): both products come out as Einsum.
"""
from __future__ import annotations

import os

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")


def keras_encoder(path: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf2onnx
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((16, 32), name="x")
    h = tf.keras.layers.Dense(64, activation="relu", bias_initializer="random_normal")(inp)
    h = tf.keras.layers.LayerNormalization()(h)
    h = tf.keras.layers.Dense(32, bias_initializer="random_normal")(h)
    pooled = tf.keras.layers.GlobalAveragePooling1D()(h)
    out = tf.keras.layers.Dense(10, bias_initializer="random_normal", name="logits")(pooled)
    model = tf.keras.Model(inp, out)
    spec = (tf.TensorSpec((None, 16, 32), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    onnx.save(proto, path)


def jax_mlp(path: str) -> None:
    import jax
    import jax.numpy as jnp
    from jax2onnx import to_onnx
    rng = np.random.default_rng(0)
    w1 = jnp.asarray((rng.standard_normal((32, 64)) / 6).astype(np.float32))
    b1 = jnp.asarray(rng.standard_normal(64).astype(np.float32))
    w2 = jnp.asarray((rng.standard_normal((64, 10)) / 8).astype(np.float32))

    def mlp(x):
        return jax.nn.relu(jnp.einsum("bsk,kn->bsn", x, w1) + b1) @ w2
    onnx.save(to_onnx(mlp, [("B", 16, 32)]), path)


def main() -> None:
    for name, export in (("keras_encoder.onnx", keras_encoder), ("jax_mlp.onnx", jax_mlp)):
        path = os.path.join(MODELS, name)
        export(path)
        onnx.checker.check_model(path, full_check=True)
        print(f"wrote models/{name} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
