"""4-bit tensors as they are stored: two elements per byte, the first in the low nibble (onnx's raw_data and
external data for INT4, UINT4 and FLOAT4E2M1), and as numpy holds them (one ml_dtypes element per byte).

Every place that turns an array into stored bytes (a new initializer, a sink, the canonical writer) or stored bytes
into an array (external data) goes through stored() and unpacked(), so that a 4-bit weight kept quantized in
the Conv is written at half a byte per element, as it came.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import helper

T = onnx.TensorProto
FOUR_BIT = {getattr(T, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(T, n)}


def is_four_bit(data_type: int) -> bool:
    return data_type in FOUR_BIT


def stored(value: np.ndarray) -> np.ndarray:
    """The bytes `value` is stored as, little-endian: a 4-bit array packed two to a byte (odd counts padded with
    a zero nibble), any other array as it is."""
    value = np.ascontiguousarray(value)
    if value.dtype.itemsize != 1 or not is_four_bit(helper.np_dtype_to_tensor_dtype(value.dtype)):
        return value.astype(value.dtype.newbyteorder("<"), copy=False)
    nibbles = value.reshape(-1).view(np.uint8) & 0x0F
    if nibbles.size % 2:
        nibbles = np.concatenate([nibbles, np.zeros(1, np.uint8)])
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def stored_count(data_type: int, dims: Sequence[int]) -> int:
    """How many stored elements (bytes, for 4-bit types) a tensor of `dims` takes."""
    n = int(np.prod(dims, dtype=np.int64)) if len(dims) else 1
    return (n + 1) // 2 if is_four_bit(data_type) else n


def storage_dtype(data_type: int) -> np.dtype:
    return np.dtype(np.uint8) if is_four_bit(data_type) else helper.tensor_dtype_to_np_dtype(data_type)


def unpacked(raw: np.ndarray, data_type: int, dims: Sequence[int]) -> np.ndarray:
    """The array of `dims` that the stored elements `raw` (as storage_dtype reads them) hold."""
    if not is_four_bit(data_type):
        return raw.reshape(tuple(dims))
    n = int(np.prod(dims, dtype=np.int64)) if len(dims) else 1
    nibbles = np.empty(raw.size * 2, np.uint8)
    nibbles[0::2], nibbles[1::2] = raw & 0x0F, raw >> 4
    nibbles = nibbles[:n]
    dtype = helper.tensor_dtype_to_np_dtype(data_type)
    if data_type == T.INT4:   # sign-extend the nibble before viewing it as int4
        nibbles = np.where(nibbles >= 8, nibbles.astype(np.int16) - 16, nibbles).astype(np.int8)
    return nibbles.astype(dtype).reshape(tuple(dims))
