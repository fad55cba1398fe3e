"""The verification policy of a conversion: the reference run of the original, the tolerances of a run, and the
check of an attempt (whole model, then each converted layer on its own, reverting the layers that make it wrong,
then onnx's checker)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple, Union

import onnx

from ..graph.shapes import infer
from ..result import PassResult
from . import inputs as feeds_mod
from .compare import output_steps, tolerances
from .revert import Outcome, check_layer, revert_bad_layers, wrong_alone
from .checker import Checked, CheckerVerdict, run_checker
from .held import Held
from .verdict import Reference, copy_of, is_quantized

if TYPE_CHECKING:
    from ..options import Options


def run_tolerances(result: PassResult, options: Options, reference: Optional[Reference] = None) -> Tuple[float, float]:
    return tolerances([c.dtype for c in result.converted], reference is not None and reference.integer,
                      options.rtol, options.atol)


def reference(info: onnx.ModelProto, original: Union[onnx.ModelProto, str], options: Options,
              workdir: Optional[str] = None) -> Reference:
    """The original's run on the first input candidates it accepts; large input sets and outputs are held in files
    under `workdir` (held.py)."""
    candidates = feeds_mod.candidates(info, infer(info), options.input_sets, options.seed, options.input_shapes,
                                      options.inputs, hold=lambda: Held(workdir))
    return Reference(original, [o.name for o in info.graph.output], [], options.progress, output_steps(info),
                     is_quantized(info), candidates, workdir)


LAYER_CHECK_MAX_BYTES = 2**30   # above this much weight, the layers are checked on their own only after a failure


def verify(job, first: Outcome, original, reference: Reference, options: Options, weight_bytes: int):
    """The verification of `first`, reverting the layers that make it wrong: the outcome kept and its verdict.

    Each converted layer is also checked on its own (rules/isolate.py: cut out, on seeded random activations of its real
    input shape), so that a wrong rewrite is caught where the model's inputs barely reach it. That takes a second
    pass and holds every layer's weight: a model with more than LAYER_CHECK_MAX_BYTES of weights is checked on the
    whole only, unless it fails there (the verdict says so)."""
    rtol, atol = run_tolerances(first.result, options, reference)
    outcome, verdict = first, reference.compare(first.target, rtol, atol)

    def convert_layer(layer: onnx.ModelProto) -> onnx.ModelProto:
        copy = copy_of(layer)
        options.make_pass().run(copy)
        return copy
    layers, alone = None, {}
    if reference.error is None and first.result.converted:
        if weight_bytes <= LAYER_CHECK_MAX_BYTES:
            layers = job.isolated()
            alone = {key: check_layer(layer, convert_layer, rtol, atol, options.seed) for key, layer in layers.items()}
        if not verdict.numerics_passed or any(map(wrong_alone, alone.values())):
            outcome, verdict = revert_bad_layers(job.attempt, layers if layers is not None else job.isolated(),
                                                 convert_layer, reference, rtol, atol, options.seed, alone)
    name_of = {c.key: c.name for c in first.result.converted}
    skipped = reference.error is None and first.result.converted and layers is None
    verdict.layers_alone = None if skipped else {name_of.get(k, k): why for k, why in alone.items()}
    ok, why = run_checker(outcome.target)
    verdict.checker = CheckerVerdict(Checked.PASSED) if ok else \
        CheckerVerdict(Checked.FAILED if run_checker(original)[0] else Checked.NOT_CLEAN, why)
    return outcome, verdict
