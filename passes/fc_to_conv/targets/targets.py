"""The graph shape each downstream runtime runs fastest: what `--target` chooses, from measurements
(scripts/bench_models.py; the README's Performance section has the tables).

    collapse_head_split
              the ways in and out merge with the model's own Reshapes and Transposes (simplify.py) for every
              chain; without it, not for the chains that end in an attention's activation x activation product
              or start at one (attention.product_tensors). With it, a fused QKV layer's Split also runs on the
              image (region.py), so that each part's way out merges with its heads split.

onnxruntime  collapse everything; a block-quantized layer (int4 QDQ, MatMulNBits) stays: onnxruntime runs it as its
             MatMulNBits kernel, where DequantizeLinear -> Conv dequantizes the weight at every run (3.7x-18x).
             OpenVINO runs the converted form faster (the same 4 layers: 0.84x), QNN lowers it to LPBQ. So does
             a TensorRT-style layer onnxruntime runs as MatMulIntegerToFloat (integer.py: 1.09x-1.12x converted).
             onnxruntime folds the 4-D Transposes of the ways in and out into the
             reorders around its Conv kernel (layout.py), and the collapsed chains move the least data.
             A single value beside an image (GELU's / sqrt2, + 1, * 0.5) becomes [1, 1, 1, 1]: onnxruntime
             broadcasts a scalar over [B, C, 1, T] one row of T at a time, 1.6x-2x an Add's time
             (scripts/bench_broadcast.py); not in an op onnxruntime fuses (fusions.py asks it: its FastGelu
             wants scalars). Layers reading one image are one Conv and a Split (rewrite/siblings.py): its NCHWc
             transformer folds the way in into the reorder only for a single Conv.
openvino     the chains at the attention products stay as the model wrote them; every other chain collapses.
             OpenVINO fuses the attention (MatMul -> Softmax -> MatMul) into one kernel only when Q, K and V
             arrive through the heads split's own Reshape -> Transpose and the context leaves through its own
             Transpose: a collapsed chain hides the pattern (default target: BERT 1.13x, GPT-2 1.47x). With static
             input shapes its CPU plugin runs a 1x1 Conv channels-last and cancels the ways' 4-D Transposes
             against its own reorders: the converted transformers run as many layout layers as the originals.
             (An earlier form kept whole transformer blocks in [B, C, 1, T], LayerNorm over the channels as plain
             ops: 4 layers for each MVN, 1.08x-1.20x at 2 threads. Once the ways were 4-D, leaving the blocks as
             they are measured 0.99x-1.04x at 1 and 2 threads, so that form was removed.)
ncnn         as onnxruntime, but an attention's Q, K, V and output layers stay as they are (attention.py). pnnx
             turns the original's attention into ncnn's fused MultiHeadAttention and its LayerNorms into LayerNorm
             layers; converted, the projections are Convs that no longer match, and ncnn runs the attention as
             separate MatMul, Softmax, Permute and Reshape layers. Every other FC layer converts.
qnn          as onnxruntime, but a layer whose output reaches a Tanh through element-wise ops stays FC (unfused.py):
             Qualcomm's HTP fuses GPT-2's tanh GELU after a FullyConnected, not after a Conv (emulator: 3.22x ->
             1.06x the original's cycles); and a Relu or Clip between layers, on an image with 16 rows or more,
             becomes Max / Min, the same function, which HTP runs after a Conv at a fraction of a Relu's cost
             (rewrite/clamps.py; wrapped_gemms: 1.58x -> the README's QNN table). A Mul or Add with its constant
             first has it second (rewrite/commute.py): HTP fails to finalize an RMSNorm's Mul(weight, normed).
             onnxruntime's fused SkipSimplifiedLayerNormalization and SkipLayerNormalization become their Add and
             norm (rewrite/skip_norms.py), which HTP runs where the fused ops fall to the CPU. A Gather that
             feeds a Conv gets an identity Reshape after it (rewrite/gather_views.py): the QNN EP aborts on a
             swin_t export's head converted without one.
rknn         only Reshape-wrapped layers (Reshape -> Gemm/MatMul -> Reshape) convert: RKNN converts FC layers to
             Convs itself, where fc2conv's Conv with its bias read more (hf_distilbert 1.016x fp16) and a grouped
             Conv ran as Split + Convs + Concat (1.054x); a wrapped layer converted ran at 0.175x, and GPT-2's
             wrapped Gemms converted are what RKNN then computes rightly.
ethos-u      every FC layer stays: Vela runs FullyConnected better than a 1x1 Conv (issue 18: 1.47x-2.05x).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Iterable, Set, Tuple, Union

import onnx

from ..graph.constants import Constants
from ..rules import Grouped, Plan
from ..rules.blocked import Blocked
from .attention import projections
from .integer import integer_to_float
from .unfused import feeding


class _ByStructure:
    """A keep that finds its layers in the graph before any check; it judges no plan."""

    def plan(self, plan: Plan) -> bool:
        return False


class _OnPlan:
    """A keep that judges the plan a rule made; it finds nothing in the graph beforehand."""

    def layers(self, nodes: Iterable[onnx.NodeProto], fc_nodes: Iterable[onnx.NodeProto],
               consts: Constants) -> Set[int]:
        return set()


@dataclass(frozen=True)
class KeepProjections(_ByStructure):
    """An attention's Q, K, V and output layers (attention.py), found by the graph's structure."""
    reason: str

    def layers(self, nodes: Iterable[onnx.NodeProto], fc_nodes: Iterable[onnx.NodeProto],
               consts: Constants) -> Set[int]:
        return projections(nodes, fc_nodes, consts)


@dataclass(frozen=True)
class KeepFeeding(_ByStructure):
    """A layer whose output reaches one of `ops` through element-wise ops, one of them in `via` (unfused.py)."""
    ops: FrozenSet[str]
    reason: str
    via: FrozenSet[str] = frozenset()

    def layers(self, nodes: Iterable[onnx.NodeProto], fc_nodes: Iterable[onnx.NodeProto],
               consts: Constants) -> Set[int]:
        return feeding(fc_nodes, consts.index, self.ops, self.via)


@dataclass(frozen=True)
class KeepIntegerToFloat(_ByStructure):
    """A quantized layer onnxruntime runs as MatMulIntegerToFloat (integer.py), found by the graph's structure."""
    reason: str

    def layers(self, nodes: Iterable[onnx.NodeProto], fc_nodes: Iterable[onnx.NodeProto],
               consts: Constants) -> Set[int]:
        return integer_to_float(fc_nodes, consts)


@dataclass(frozen=True)
class KeepGrouped(_OnPlan):
    """A grouped layer (a 3-D weight: the Conv's group > 1), once its rule accepted it."""
    reason: str

    def plan(self, plan: Plan) -> bool:
        return isinstance(plan.layer, Grouped)


@dataclass(frozen=True)
class KeepBlocked(_OnPlan):
    """A layer with a block-quantized weight (rules/blocked.py, nbits.py), once its rule accepted it."""
    reason: str

    def plan(self, plan: Plan) -> bool:
        return isinstance(plan.quant, Blocked)


@dataclass(frozen=True)
class KeepAll(_OnPlan):
    """Every layer its rule accepted."""
    reason: str

    def plan(self, plan: Plan) -> bool:
        return True


@dataclass(frozen=True)
class KeepUnwrapped(_OnPlan):
    """Every layer its rule accepted but a Reshape-wrapped one (rules/wrapped.py: its Reshapes go with it)."""
    reason: str

    def plan(self, plan: Plan) -> bool:
        return not plan.absorbed


Keep = Union[KeepProjections, KeepFeeding, KeepIntegerToFloat, KeepGrouped, KeepBlocked, KeepAll, KeepUnwrapped]


@dataclass(frozen=True)
class Target:
    """What a target leaves as it is: `keeps`, each with the reason the report gives; a layer the structure marks
    (`layers`, before any check) keeps the first such reason; a layer its rule accepted is then offered to each
    keep's `plan` (a layer its rule refused keeps the rule's reason)."""
    collapse_head_split: bool  # also collapse the chains into an attention product (and split a fused QKV layer)
    keeps: Tuple[Keep, ...] = ()
    clamps_as_max_min: bool = False   # a Relu or Clip on a wide image as Max / Min (rewrite/clamps.py)
    constants_second: bool = False    # Mul(constant, x) as Mul(x, constant), Add too (rewrite/commute.py)
    split_skip_norms: bool = False    # onnxruntime's fused skip norms as Add + norm (rewrite/skip_norms.py)
    view_gathers: bool = False        # an identity Reshape between a Gather and its Conv (rewrite/gather_views.py)
    ranked_scalars: bool = False      # a single value beside an image as [1, 1, 1, 1] (rewrite/writer.py)
    fuse_siblings: bool = False       # the Convs that read one image as one Conv and a Split (rewrite/siblings.py)


TARGETS = {
    "onnxruntime": Target(collapse_head_split=True, ranked_scalars=True, fuse_siblings=True, keeps=(KeepIntegerToFloat(
        "a TensorRT-style quantized layer (Q -> DQ on its inputs, no QuantizeLinear after it), left for onnxruntime "
        "(--target onnxruntime), which runs it as one MatMulIntegerToFloat kernel and its Conv form as "
        "DequantizeLinear + float Conv (ModelOpt-style BERT 1.087x, ViT 1.124x the original's time converted)"),
        KeepBlocked(
        "block-quantized weight, left for onnxruntime's MatMulNBits kernel (--target onnxruntime): as DequantizeLinear "
        "-> Conv the weight is dequantized at every run (int4, 4 layers of 1024 x 2048, 16 tokens, 1 thread: 3.7x "
        "the original's time from QDQ, 4.8x from MatMulNBits; other targets convert it)"),)),
    "openvino": Target(collapse_head_split=False),
    "qnn": Target(collapse_head_split=True, clamps_as_max_min=True, constants_second=True, split_skip_norms=True,
                  view_gathers=True, keeps=(KeepFeeding(
        frozenset({"Tanh"}), "its output reaches a Tanh through element-wise ops (a tanh GELU: x^3 on the way), "
                             "left for QNN (--target qnn): HTP fuses such a chain after a FullyConnected, not after "
                             "a Conv (GPT-2's tanh GELU: 2.9x the cycles converted)", frozenset({"Pow"})),)),
    "rknn": Target(collapse_head_split=True, keeps=(KeepGrouped(
        "a grouped layer, left for RKNN (--target rknn): RKNN runs the batched MatMul as one exMatMul and the "
        "grouped Conv as Split + one Conv per group + Concat (grouped.onnx, fp16 on RK3588: 1.054x the cycles "
        "converted)"), KeepUnwrapped(
        "left for RKNN (--target rknn), which turns FC layers into Convs itself (convert_exmatmul_to_conv); "
        "fc2conv's Conv, bias included, reads more (hf_distilbert, fp16 on RK3588: 1.016x the cycles converted). "
        "Only Reshape-wrapped layers convert (wrapped_gemms: 0.175x)"))),
    "ethos-u": Target(collapse_head_split=True, keeps=(KeepAll(
        "left as a fully connected layer for Ethos-U (--target ethos-u): Vela runs a FullyConnected better than the "
        "1x1 Conv on an image (transformer_block 2.05x, ViT 1.47x the cycles converted on U85-256); Vela turns "
        "only a 1x1 Conv on a 1x1 input back into FullyConnected (convert_conv_to_fc)"),)),
    "ncnn": Target(collapse_head_split=True, keeps=(KeepProjections(
        "an attention projection, left for ncnn (--target ncnn): pnnx fuses the Q, K, V and output layers with the "
        "attention into one MultiHeadAttention layer, which a Conv would break (measured 1.3x slower on a ViT)"),)),
}
