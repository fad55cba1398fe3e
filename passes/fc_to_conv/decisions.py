"""--decisions FILE: the choices of a --tune run, written as JSON and read back, so that a tuned conversion repeats
byte for byte on another machine without measuring (as TensorRT's timing cache lets a build repeat).

    {"fc2conv_decisions": 1, "toolchain": "onnxruntime", "kept": {"#4": {"name": "fc2", "why": "measured on ..."}}}

Layers are named by the pass's key (the scope and the node's position) and by name; a file whose layers are not
the model's (another model, or one edited since) is refused with one line, never applied in part.
"""
from __future__ import annotations

import json
from typing import Dict

from .errors import BadInput
from .tune import Tuned, Tuning

VERSION = 1


def write(path: str, tuning: Tuning, names: Dict[str, str]) -> None:
    kept = {k: {"name": names.get(k, ""), "why": why} for k, why in sorted(tuning.kept.items())}
    with open(path, "w") as f:
        json.dump({"fc2conv_decisions": VERSION, "toolchain": tuning.toolchain, "kept": kept}, f, indent=2)
        f.write("\n")


def read(path: str) -> Dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read the decisions file ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("fc2conv_decisions") != VERSION or \
            not isinstance(data.get("kept"), dict):
        raise BadInput(f"{path}: not an fc2conv decisions file (version {VERSION}, written by --tune --decisions)")
    return data


def exclusions(data: Dict, layers: Dict[str, str], path: str) -> Dict[str, str]:
    """The exclusions the file makes, checked against the model's layers (key -> name)."""
    out = {}
    for key, kept in data["kept"].items():
        if layers.get(key) != kept.get("name"):
            raise BadInput(f"{path}: the decisions name layer '{kept.get('name')}' ({key}), which this model does not "
                           f"have there: they were made for another model")
        out[key] = Tuned(f"{kept.get('why', '')} [decided earlier: {path}]")
    return out
