"""The pass's output, byte for byte, on every shipped model and target: a refactor that changes one byte of any of
them fails here. The pass runs without verification (what the rewrite writes, not what a revert keeps), in memory;
tests/golden_outputs.json holds the sha256 of each serialized result.

    python tests/test_golden.py     # rewrite golden_outputs.json after a change meant to change outputs; say why
"""
import glob
import hashlib
import json
import os
import sys

import onnx
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from passes.fc_to_conv import Options, convert  # noqa: E402
from passes.fc_to_conv.targets.targets import TARGETS  # noqa: E402

GOLDEN = os.path.join(HERE, "golden_outputs.json")
MODELS = sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx")) +
                glob.glob(os.path.join(ROOT, "models", "quantized", "*.onnx")) +
                glob.glob(os.path.join(ROOT, "models", "real", "*.onnx")))


def digest(path: str, target: str) -> str:
    model, _ = convert(onnx.load(path), Options(verify=False, target=target))
    return hashlib.sha256(model.SerializeToString()).hexdigest()


def key(path: str, target: str) -> str:
    return f"{os.path.relpath(path, os.path.join(ROOT, 'models'))} {target}"


@pytest.fixture(scope="module")
def golden():
    with open(GOLDEN) as f:
        return json.load(f)


def test_every_model_and_target_has_a_golden_output(golden):
    assert sorted(golden) == sorted(key(p, t) for p in MODELS for t in TARGETS)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "models")))
def test_outputs_are_byte_for_byte_the_golden_ones(path, golden):
    changed = [t for t in sorted(TARGETS) if digest(path, t) != golden.get(key(path, t))]
    assert not changed, f"{os.path.basename(path)}: the output changed for {changed}"


if __name__ == "__main__":
    table = {key(p, t): digest(p, t) for p in MODELS for t in sorted(TARGETS)}
    with open(GOLDEN, "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(table)} digests to {GOLDEN}")
