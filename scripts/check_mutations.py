"""Can the tests fail? Break the code on purpose, one mutation at a time, and check that the suite notices.

    python scripts/check_mutations.py [--only NAME ...] [--all-tests]

Each mutation replaces one exact piece of source in a copy of the checkout and runs the tests named for it (or,
with --all-tests, the whole suite); a mutation that no test fails on is a hole in the tests and is printed as
SURVIVED. Exit 1 if any survives. The mutations are those a review found the suite blind to, and the bugs the
verification must catch (tests/test_revert.py injects more at run time).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "passes/fc_to_conv/"

# name: (file, exact text, replacement, tests to run)
MUTATIONS = {
    "QGemm alpha not folded into the weight scale": (
        PKG + "rules/qlinear.py", "        qlinear.w_scale = _per_n(qlinear.w_scale, n, cand.alpha)",
        "        qlinear.w_scale = _per_n(qlinear.w_scale, n)", ["tests/test_quantized.py"]),
    "fp32 checked with the fp16 tolerance": (
        PKG + "verify/compare.py", '    low = any(d in ("float16", "bfloat16") for d in dtypes)',
        "    low = True", ["tests/test_verify.py"]),
    "MatMul note with its dtypes swapped": (
        PKG + "rules/add_bias.py", "its operand is {c.dtype}, the weight {plan.np_dtype}",
        "its operand is {plan.np_dtype}, the weight {c.dtype}", ["tests/test_forms.py"]),
    "bisection never tries the last layer": (
        PKG + "verify/revert.py", "    for group in (keys[:half], keys[half:]):", "    for group in (keys[:half], keys[half:-1]):",
        ["tests/test_revert.py"]),
    "negated Conv weight": (
        PKG + "rules/fold.py", "    return _scaled(b_t, alpha, b.dtype)[:, :, None, None]",
        "    return -_scaled(b_t, alpha, b.dtype)[:, :, None, None]",
        ["tests/test_old_models.py", "tests/test_subgraphs.py", "tests/test_model_io.py", "tests/test_cli.py",
         "tests/test_bad_inputs.py"]),
    "bisection finds nothing": (
        PKG + "verify/revert.py", '    """The keys that fail alone, assuming a bad rewrite fails whatever else is enabled."""\n',
        '    """The keys that fail alone, assuming a bad rewrite fails whatever else is enabled."""\n    return {}\n',
        ["tests/test_revert.py"]),
    "per-K quantized head not refused": (
        PKG + "rules/fc.py", "    if head is not None and quant is not None and quant.varies_along_k(cand.trans_b):",
        "    if False:", ["tests/test_quantized.py"]),
    "quantized weights never shared": (
        PKG + "rules/fc.py", '1.0, (cand.w, trans_b, "q")', '1.0, (cand.w, trans_b, "q", id(cand))',
        ["tests/test_quantized.py"]),
    "biases never shared": (
        PKG + "rules/gemm.py", "plan.bias_key = fold.conv_bias(c, n, cand.beta, dtype), (cand.c, cand.beta)",
        "plan.bias_key = fold.conv_bias(c, n, cand.beta, dtype), (cand.c, cand.beta, id(cand))",
        ["tests/test_rewrite.py"]),
    "opset < 10 Slice form wrong": (
        PKG + "rewrite/emit.py", 'return self.node("Slice", [shape], hint, axes=[0], starts=[0], ends=[keep])',
        'return self.node("Slice", [shape], hint, axes=[0], starts=[0], ends=[keep + 1])',
        ["tests/test_old_models.py"]),
    "integer Div not truncated": (
        PKG + "graph/constants.py", "        out = np.trunc(out)\n", "        out = np.floor(out)\n", ["tests/test_constants.py"]),
    "kernel_shape dropped": (
        PKG + "rewrite/writer.py", "                                              kernel_shape=list(plan.layer.kernel)))",
        "                                              ))", ["tests/test_heads.py", "tests/test_rewrite.py"]),
    "quantized bias folded to float": (
        PKG + "rules/quantized.py", '    QDQ compiler sees the bias of a quantized Conv."""\n',
        '    QDQ compiler sees the bias of a quantized Conv."""\n    return False\n', ["tests/test_quantized_models.py"]),
    "quantized activations leave the image layout": (
        PKG + "rewrite/region.py", '    if node.op_type in QDQ and not per_tensor(node, consts):',
        '    if node.op_type in QDQ:', ["tests/test_quantized_models.py"]),
    "revert loop unbounded": (
        PKG + "verify/revert.py", "        if not set(found) - set(exclude):\n", "        if False:\n",
        ["tests/test_revert.py"]),
    "way in by a 3-D Transpose (onnxruntime cannot fold it)": (
        PKG + "rewrite/layout.py", "        if rank < 4:",
        '        if rank == 3:\n'
        '            return em.reshape(em.transpose(x, [0, 2, 1], hint + "_chw"), [0, 0, 1, -1], hint + "_image")\n'
        '        if rank < 4:',
        ["tests/test_rewrite.py"]),
    "openvino target collapses the attention's chains": (
        PKG + "targets/targets.py", '"openvino": Target(collapse_head_split=False)', '"openvino": Target(collapse_head_split=True)',
        ["tests/test_targets.py"]),
    "every FC layer taken for an attention projection": (
        PKG + "targets/attention.py", "        if not _product(node, consts):\n            continue\n",
        "        found |= {id(n) for n in fc_nodes}\n", ["tests/test_targets.py"]),
    "Clip's bounds swapped in its Max / Min form": (
        PKG + "rewrite/clamps.py", '(("Max", lo), ("Min", hi))', '(("Max", hi), ("Min", lo))',
        ["tests/test_qnn.py"]),
    "rknn converts every layer again": (
        PKG + "targets/targets.py", "        return not plan.absorbed", "        return False", ["tests/test_targets.py"]),
}


def run(name: str, all_tests: bool) -> bool:
    """True when the tests fail on the mutation (it is killed): pytest's exit 1, tests ran and some failed. Any
    other exit (2 interrupted, 3 internal error, 4 a collection or usage error, 5 no tests) is not a kill: a
    mutant that breaks the import is no proof that the tests can fail."""
    path, old, new, tests = MUTATIONS[name]
    with tempfile.TemporaryDirectory(prefix="fc2conv-mutant-") as tmp:
        tree = os.path.join(tmp, "tree")   # the sources and tests only: not a virtual environment in the checkout
        for part in ("passes", "tests", "scripts", "models"):
            shutil.copytree(os.path.join(ROOT, part), os.path.join(tree, part),
                            ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
        target = os.path.join(tree, path)
        source = open(target).read()
        if source.count(old) != 1:
            raise SystemExit(f"{name}: the text to mutate is not found once in {path}; update this script")
        open(target, "w").write(source.replace(old, new))
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"] + ([] if all_tests else tests)
        r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=1800,
                           env=dict(os.environ, PYTHONPATH=tree))
        if r.returncode not in (0, 1):
            print(f"  {name}: pytest exit {r.returncode}, not a test failure:\n{r.stdout[-600:]}", flush=True)
        return r.returncode == 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--all-tests", action="store_true")
    a = ap.parse_args()
    survived = 0
    for name in MUTATIONS:
        if a.only and name not in a.only:
            continue
        killed = run(name, a.all_tests)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'} {name}", flush=True)
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
