"""--tune: measure the verified output against the original on the target's own toolchain, and put back in FC
form the layers whose Conv form measures slower, until the whole model measures no slower than the original.

1. The original and the output are measured together (toolchains/: a child process, interleaved rounds, each
   model's figure the toolchain's statistic over them).
   An output that does not load where the original does (an EP that aborts reads "does not load") has layers put
   back, found by bisection one at a time (until_it_loads), until it loads; then it is tuned as any other.
2. Then each region of converted layers (tune_regions.py: the layers that share a way in, or whose image
   runs from one to the next) in turn is tried in FC form: one attempt of the pass with that region (and those
   already put back) left alone, measured against the current form in one interleaved run. The put-back stays
   when it measures faster by more than the noise: the toolchain's own floor or the spread of the two
   measurements, whichever is larger. Where a region of several layers measures faster as FC, each of its
   layers is also tried alone, and the fastest of these forms stays (one slow layer among fast ones). Regions
   alike (tune_regions.alike: the same layers in the same order) are tried as one, and their layers at one
   place in them together: a transformer's blocks cost alike. Cost: one attempt and one paired measurement per
   kind of region, and one per place in a kind put back.
3. The result is measured against the original once more; still above it by more than the noise floor (here the
   spread does not excuse it: LeViT was written at 1.13x at 2 threads, within its rounds' spread), every layer is
   put back (the output is then the original's graph), so that the written model never measures slower.
Each layer put back is reported with the figures it was decided on (the whole model's cost with it as FC and as
Conv), and the tuned model is verified against the original as the first attempt was.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import onnx

from .toolchains import Cost
from .tune_regions import alike, regions
from .verify.revert import Outcome


class Tuned(str):
    """An exclusion made by --tune: the layer stays an FC layer by measurement (not reverted for its numerics)."""


@dataclass
class Tuning:
    toolchain: str
    original: Cost
    converted: Cost                 # the verified output before tuning
    tuned: Cost                     # what is written ...
    against: Optional[Cost] = None  # ... and the original in the same interleaved run (None: the first run's)
    measurements: int = 0           # toolchain runs (each over several models, interleaved)
    rounds: int = 0
    kept: Dict[str, str] = field(default_factory=dict)   # layer key -> the figures it was put back on

    @property
    def ratio(self) -> Optional[float]:
        """The written model's cost over the original's, both from one interleaved run."""
        base = self.against or self.original
        return self.tuned.value / base.value if self.tuned.value and base.value else None

    def lines(self) -> List[str]:
        again = f" against the original's {self.against.text()} in the same run" if self.against else ""
        each = f"{self.rounds} interleaved rounds" if self.rounds > 1 else "one run"
        return [f"tuning: measured on {self.toolchain} ({self.measurements} measurement(s) of {each} each): "
                f"original {self.original.text()}, converted {self.converted.text()}, "
                f"written {self.tuned.text()}{again}" + (f" = {self.ratio:.3f}x the original" if self.ratio else "")]


RETRIES = 2   # further measurements of a pair the spread leaves undecided


def _undecided(a: Cost, b: Cost, noise: float) -> bool:
    """One reads slower than the other by more than the noise floor, and the spread keeps it from counting."""
    if a.value is None or b.value is None or _slower(a, b, noise) or _slower(b, a, noise):
        return False
    return max(a.value, b.value) > min(a.value, b.value) * (1 + noise)


def _slower(a: Cost, b: Cost, noise: float) -> bool:
    """a costs more than b by more than the noise (a model that does not load costs more than any that does)."""
    if a.value is None or b.value is None:
        return a.value is None and b.value is not None
    return a.value > b.value * (1 + max(noise, a.spread + b.spread))


def _graph(original: Union[onnx.ModelProto, str]) -> onnx.GraphProto:
    return (original if isinstance(original, onnx.ModelProto) else onnx.load(original, load_external_data=False)).graph


def _over(a: Cost, b: Cost, noise: float) -> bool:
    """a reads above b by more than the noise floor, whatever the spread: the last check, where a doubt (the pair
    measured again and still apart beyond the floor) is settled for the original's graph."""
    if a.value is None or b.value is None:
        return a.value is None and b.value is not None
    return a.value > b.value * (1 + noise)


def _what(part: List[str], kind: List[List[str]], layers) -> str:
    """What a put-back part is, for its reason: a layer, a region, or either of several regions alike."""
    names = lambda keys: ", ".join(layers[k].name for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
    if len(kind) == 1:
        return f"it as {layers[part[0]].op}" if len(part) == 1 else \
            f"its region of {len(part)} layers ({names(part)}) as FC"
    if len(part) == len(kind):   # the layers at one place in each region
        return f"it and the {len(part) - 1} layers alike ({names(part)}) as FC"
    return f"its region and the {len(kind) - 1} alike, {len(part)} layers ({names(part)}) as FC"


class Tuner:
    def __init__(self, toolchain, attempt: Callable[[Dict[str, str]], Outcome], rounds: int = 5):
        self.toolchain, self.attempt, self.rounds = toolchain, attempt, getattr(toolchain, "rounds", 0) or rounds
        self.folder = ""            # models held in memory are written here to be measured, removed after tune()
        self.measurements = 0

    def _path(self, target: Union[onnx.ModelProto, str]) -> str:
        if isinstance(target, str):
            return target
        path = os.path.join(self.folder, f"m{self.measurements}_{id(target)}.onnx")
        onnx.save(target, path)
        return path

    def measure(self, *targets, rounds: int = 0) -> List[Cost]:
        self.measurements += 1
        return self.toolchain.measure([self._path(t) for t in targets], rounds=rounds or self.rounds)

    def until_it_loads(self, keys: List[str], exclude: Dict[str, str]) -> Dict[str, str]:
        """The layers to put back so that the output loads on the toolchain (it loads with none converted: the
        original does). One at a time: the shortest prefix of the layers still converted that alone does not
        load ends with one that breaks it (a binary search, log2(n) loads of one round each), which goes back."""
        back: Dict[str, str] = {}
        loads = lambda ex: self.measure(self.attempt(ex).target, rounds=1)[0].value is not None
        while True:
            live = [k for k in keys if k not in back]
            if not live or loads({**exclude, **back}):
                return back
            lo, hi = 1, len(live)
            while lo < hi:
                mid = (lo + hi) // 2
                if loads({**exclude, **back, **{k: Tuned("") for k in live[mid:]}}):
                    lo = mid + 1
                else:
                    hi = mid
            back[live[lo - 1]] = Tuned(f"measured on {self.toolchain.name}: the output does not load with it as a "
                                       "Conv (found by bisection; the original loads)")

    def pair(self, a, b) -> Tuple[Cost, Cost]:
        """a and b measured together; while one reads slower than the other by more than the noise but the spread
        hides it (a slow spell took most rounds of one model), measured again and pooled, up to RETRIES times."""
        ca, cb = self.measure(a, b)
        for _ in range(RETRIES):
            if not _undecided(ca, cb, self.toolchain.noise):
                break
            na, nb = self.measure(a, b)
            ca, cb = ca.merged(na), cb.merged(nb)
        return ca, cb

    def put_back(self, kind: List[List[str]], current: Outcome, exclude: Dict[str, str], layers):
        """The part of `kind` (regions alike, tune_regions.alike) whose FC form measures fastest against `current`,
        faster beyond the noise: the regions as a whole, or, when that wins and they have several layers each,
        the layers at one place in them (one slow layer with fast partners). None when the regions as Convs
        measure no slower."""
        width = len(kind[0])
        whole = [k for region in kind for k in region]
        best = None
        for part in [whole] + ([[r[j] for r in kind] for j in range(width)] if width > 1 else []):
            if part is not whole and best is None:
                break
            trial = self.attempt({**exclude, **{k: Tuned("") for k in part}})
            as_conv, as_fc = self.pair(current.target, trial.target)
            if _slower(as_conv, as_fc, self.toolchain.noise) and (best is None or as_fc.value < best[3].value):
                why = Tuned(f"measured on {self.toolchain.name}: the model with {_what(part, kind, layers)} "
                            f"{as_fc.text()}, as Conv {as_conv.text()}")
                best = (part, why, trial, as_fc)
        return best

    def tune(self, first: Outcome, original: Union[onnx.ModelProto, str]) -> Tuple[Outcome, Tuning]:
        with tempfile.TemporaryDirectory(prefix="fc2conv-tune-") as self.folder:
            return self._tune(first, original)

    def _tune(self, first: Outcome, original: Union[onnx.ModelProto, str]) -> Tuple[Outcome, Tuning]:
        base, now = self.pair(original, first.target)
        tuning = Tuning(self.toolchain.name, base, now, now, rounds=self.rounds)
        current, exclude = first, {}
        noise = self.toolchain.noise
        if now.value is None and base.value is not None:   # bisect to an output that loads, then tune that
            exclude = self.until_it_loads([c.key for c in first.result.converted], {})
            current = self.attempt(exclude)
            base, now = self.pair(original, current.target)
        if current.result.converted:
            layers = {c.key: c for c in current.result.converted}
            for kind in alike(regions(_graph(original), list(layers)), layers):
                found = self.put_back(kind, current, exclude, layers)
                if found:
                    part, why, current, now = found   # its graph; the reasons are written by the attempt below
                    exclude.update({k: why for k in part})
            if exclude:
                current = self.attempt(exclude)
                base, now = self.pair(original, current.target)
            if _over(now, base, noise) and current.result.converted:
                why = Tuned(f"measured on {self.toolchain.name}: the converted model {now.text()} against the "
                            f"original's {base.text()}; every layer put back")
                exclude.update({c.key: why for c in current.result.converted})
                current = self.attempt(exclude)
                now = base
        tuning.tuned, tuning.measurements = now, self.measurements
        tuning.against = base if base is not tuning.original else None
        tuning.kept = {k: str(v) for k, v in exclude.items()}
        return current, tuning
