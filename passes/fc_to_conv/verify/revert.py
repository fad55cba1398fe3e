"""Verified or reverted: find the rewrites that make the model wrong, and convert again without them.

Called when the whole converted model fails verification against the original (and the original itself ran):
1. Each converted layer is cut out on its own (rules/isolate.py), converted and compared: a layer wrong on its own is
   reverted with that error. This finds a bug that hits every layer in one pass over tiny models.
2. The pass runs again without those layers. If the whole model still fails, the remaining layers are bisected:
   the pass runs with only one half of them enabled, then the half of that half that fails, and so on, so b bad
   layers among L cost about 2 b log2(L) whole-model runs. The original's outputs are computed once (Reference).
3. Repeat until the model verifies or nothing is left converted. If no layer fails alone but several do together,
   the first layer whose absence lets the others pass is reverted (one whole-model run per layer tried), else all.
   Each round must exclude a layer it had not excluded before: a round that finds nothing new (exclusions that no
   longer take effect, say) ends the search with the last outcome, which then fails verification.
The reverted layers stay as they were in the original model and are listed with their error.

Nothing here knows about FC layers: any pass whose result lists `converted` items with a `key` that `exclude`
understands can be verified or reverted this way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import onnx

from ..graph.shapes import infer
from .inputs import make_feeds
from .verdict import Reference, Verification, is_quantized


@dataclass
class Outcome:
    """One attempt: the pass on a fresh copy of the original, without the excluded layers."""
    target: Union[onnx.ModelProto, str]   # what onnxruntime and the checker read: the model, or its file
    result: Any                           # the pass's result (graph_pass.PassResult)
    ops_after: Dict[str, int]
    model: Optional[onnx.ModelProto]      # the model in memory, when it is kept there


Attempt = Callable[[Dict[str, str]], Outcome]


NOT_CHECKED = "not checked: "


def check_layer(layer: onnx.ModelProto, convert: Callable[[onnx.ModelProto], onnx.ModelProto], rtol: float,
                atol: float, seed: int) -> str:
    """'' when the layer's rewrite matches the layer on its own, else the failure in one line; NOT_CHECKED and why
    when the layer cut out does not run as it is (that says nothing of the rewrite)."""
    feeds = make_feeds(layer, infer(layer), sets=1, seed=seed)
    names = [o.name for o in layer.graph.output]
    reference = Reference(layer, names, feeds, integer=is_quantized(layer))
    if reference.error is not None:
        return NOT_CHECKED + reference.error
    verdict = reference.compare(convert(layer), rtol, atol)
    return "" if verdict.numerics_passed else verdict.failure()


def wrong_alone(why: str) -> bool:
    return bool(why) and not why.startswith(NOT_CHECKED)


def _bisect(keys: List[str], fails: Callable[[List[str]], str]) -> Dict[str, str]:
    """The keys that fail alone, assuming a bad rewrite fails whatever else is enabled."""
    if len(keys) == 1:
        why = fails(keys)
        return {keys[0]: why} if why else {}
    half = len(keys) // 2
    found: Dict[str, str] = {}
    for group in (keys[:half], keys[half:]):
        why = fails(group)
        if why:
            found.update(_bisect(group, fails) if len(group) > 1 else {group[0]: why})
    return found


def revert_bad_layers(attempt: Attempt, layers: Dict[str, onnx.ModelProto],
                      convert_layer: Callable[[onnx.ModelProto], onnx.ModelProto], reference: Reference,
                      rtol: float, atol: float, seed: int,
                      alone: Optional[Dict[str, str]] = None) -> Tuple[Outcome, Verification]:
    """`layers`: each converted layer cut out on its own (FcToConvPass.run(..., isolate=True).layers); `alone`:
    check_layer's verdicts on them where the caller has them already."""
    exclude: Dict[str, str] = {}
    for key, layer in layers.items():
        why = alone[key] if alone and key in alone else check_layer(layer, convert_layer, rtol, atol, seed)
        if wrong_alone(why):
            exclude[key] = f"wrong on its own: {why}"
    while True:
        outcome = attempt(exclude)
        verdict = reference.compare(outcome.target, rtol, atol)
        if verdict.numerics_passed or not outcome.result.converted:
            return outcome, verdict
        found = _more_to_exclude(attempt, exclude, [c.key for c in outcome.result.converted], verdict, reference,
                                 rtol, atol)
        if not set(found) - set(exclude):
            return outcome, verdict  # nothing new to leave out: searching again would find the same
        exclude.update(found)


def _more_to_exclude(attempt: Attempt, exclude: Dict[str, str], enabled: List[str], verdict: Verification,
                     reference: Reference, rtol: float, atol: float) -> Dict[str, str]:
    """The layers of `enabled` to leave out next, with why."""
    def fails(group: List[str]) -> str:
        others = {k: "" for k in enabled if k not in group}
        v = reference.compare(attempt({**exclude, **others}).target, rtol, atol)
        return "" if v.numerics_passed else v.failure()

    bad = _bisect(enabled, fails)
    if bad:
        return {k: f"wrong in the whole model: {why}" for k, why in bad.items()}
    # no layer fails alone: two or more fail together (e.g. through an op moved between them); leave out the
    # first one whose absence makes the rest pass, else all of them
    why = verdict.failure()
    alone = next((k for k in enabled if not fails([e for e in enabled if e != k])), None)
    return {k: f"the rewrites fail only together: {why}" for k in ([alone] if alone else enabled)}
