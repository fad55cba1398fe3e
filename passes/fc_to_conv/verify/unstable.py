"""Outputs the original does not repeat: run twice on the same input it gives other values (issue 25, case 4).

onnxruntime-genai's Gemma2 returns its sliding-window cache `present.0.key` with the slots past the valid tokens
left as the kernel found the memory: other values at every run (0.07 apart here); a model with random ops does the
same everywhere. Such values say nothing of the rewrite. The original runs once more on the first input set; when
some output differs, on every set, and each such output is compared only where the original repeats itself (the
values that come out the same, NaN where NaN), with the count left out on its line. An output whose shape or
structure changes between runs is left out whole; when nothing at all is left to compare, the verification fails.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .compare import OutputCheck, compare_value, flatten

Masks = Dict[str, Optional[np.ndarray]]   # output -> the values (flattened) that repeat; None: none comparable


def repeated(names: List[str], first: list, again: list) -> Masks:
    """The outputs that differ between two runs on the same input, each with the mask of its values that repeat."""
    found: Masks = {}
    for name, a, b in zip(names, first, again):
        (a, a_shape), (b, b_shape) = flatten(a), flatten(b)
        if a_shape != b_shape or a.shape != b.shape:
            found[name] = None
            continue
        a, b = a.reshape(-1), b.reshape(-1)
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else a == b
        if not same.all():
            found[name] = same
    return found


def repeats(names: List[str], outs: Sequence[list], again: Callable[[int], Optional[list]]) -> List[Masks]:
    """Per input set, the outputs of `outs` (the original's) that it does not repeat: `again(i)` runs it once more
    on set i (None: that run failed). Set 0 first; the others only when some output of set 0 differs."""
    masks: List[Masks] = []
    for i in range(len(outs)):
        second = again(i)
        if second is None:
            return []
        masks.append(repeated(names, outs[i], second))
        del second
        if not masks[0]:
            return []
    return masks


def stable_part(ref, got, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The values of `ref` and `got` where the original repeats itself (got as it is when its size differs: the
    comparison then fails on the shape, as it should)."""
    r, g = flatten(ref)[0].reshape(-1), flatten(got)[0].reshape(-1)
    return r[mask], (g[mask] if g.size == mask.size else g)


def annotate(check: Optional[OutputCheck], name: str, left: int, total: int) -> OutputCheck:
    """The line of an output compared on its repeated values only (`left` of `total` left out), or left out whole
    (`check` None: no set had a value to compare)."""
    if check is None:
        return OutputCheck(name, detail=f"left out: all {total} of its values differ between two runs of the "
                                        "original on the same input" if total else
                                        "left out: the original gives it another shape or structure from run to "
                                        "run on the same input")
    note = f"{left} of {total} values left out: the original gives others at each run on the same input"
    check.detail = f"{check.detail}; {note}" if check.detail else note
    return check


def compare_outputs(names: List[str], expected: Sequence[list], gots: Iterator[list], repeats: List[Masks],
                    rtol: float, atol: float, steps: Dict[str, float]) -> Tuple[List[OutputCheck], Optional[str]]:
    """Every output over the input sets (compare.compare_value), each unstable one (`repeats`, per set) on the
    values the original repeats; and the error when no output had a value to compare. `gots` is read one set at a
    time, each compared before the next is made."""
    checks: Dict[str, OutputCheck] = {}
    left: Dict[str, List[int]] = {}   # unstable output -> [values left out, values in all]
    for s in range(len(expected)):
        got = next(gots, None)
        if got is None:   # the run failed (the caller has why)
            return [], "not every input set ran"
        _fold(names, expected[s], got, repeats[s] if s < len(repeats) else {}, checks, left, rtol, atol, steps)
        del got
    outputs = [annotate(checks.get(n), n, *left[n]) if n in left else checks[n] for n in names]
    if names and not checks:
        return outputs, ("the original gives other outputs from run to run on the same input (shapes or structures "
                         "differ, or every value): there is nothing to compare the rewrite with")
    return outputs, None


def _fold(names: List[str], ref: list, got: list, masks: Masks, checks: Dict[str, OutputCheck],
          left: Dict[str, List[int]], rtol: float, atol: float, steps: Dict[str, float]) -> None:
    """One input set's outputs into `checks` and `left` (compare_outputs)."""
    for name, r, g in zip(names, ref, got):
        if name in masks:
            counts, mask = left.setdefault(name, [0, 0]), masks[name]
            if mask is not None:
                counts[0] += int(mask.size - mask.sum())
                counts[1] += int(mask.size)
            if mask is None or not mask.any():
                continue
            r, g = stable_part(r, g, mask)
        checks[name] = compare_value(name, r, g, rtol, atol, checks.get(name), steps.get(name, 0.0))
