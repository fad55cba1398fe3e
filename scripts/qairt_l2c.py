"""Qualcomm's own Linear -> Conv rewrite, for the side-by-side benchmark (scripts/bench_npu.py qnn
--qairt-python): qairt-dev's experimental CanonizeGemmPass + LinearToConvPass, then its LayoutOptRewriter, as its
docstring prescribes. Runs in a venv of its own (qairt-dev 0.13 wants Python 3.10 or 3.12 and onnx 1.19.1; the
pyenv here has 3.12):

    ~/.pyenv/versions/3.12.1/bin/python -m venv Q
    Q/bin/pip install qairt-dev==0.13.0 onnx==1.19.1 onnx-ir networkx onnxruntime onnxscript scipy islpy "numpy>=2,<2.3"
    Q/bin/python scripts/qairt_l2c.py IN.onnx OUT.onnx

(qairt-dev does not declare the optimizer's own imports, and pins numpy 1.26.4 where the optimizer uses numpy 2's
`np.long`.) `import qairt` looks for the QAIRT SDK, which comes from Qualcomm's site, not PyPI, and asks that
site for its versions; the ONNX optimizer needs neither, so it is imported without running `qairt/__init__.py`.

Prints one JSON line: {"converted": Convs after - Convs before, "error": null or the first line of what failed}.
"""
from __future__ import annotations

import json
import sys


def _optimizer_only() -> None:
    """`qairt` as a bare package: its submodules import, its __init__ (the SDK lookup) does not run."""
    import importlib.util
    import types
    spec = importlib.util.find_spec("qairt")
    package = types.ModuleType("qairt")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["qairt"] = package


def main(src: str, out: str) -> None:
    import onnx
    _optimizer_only()
    from qairt.optimizer.onnx.graph import GraphContext
    from qairt.optimizer.onnx.passes import LayoutOptRewriter
    from qairt.optimizer.onnx.passes.experimental import CanonizeGemmPass, LinearToConvPass
    before = sum(n.op_type == "Conv" for n in onnx.load(src, load_external_data=False).graph.node)
    ctx = GraphContext.from_files(src)
    CanonizeGemmPass().apply(ctx)
    LinearToConvPass().apply(ctx)
    LayoutOptRewriter().apply(ctx)
    ctx.save_onnx(out)
    after = sum(n.op_type == "Conv" for n in onnx.load(out, load_external_data=False).graph.node)
    print(json.dumps({"converted": after - before, "error": None}))


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as exc:   # noqa: BLE001 - the finding is that it did not convert
        print(json.dumps({"converted": 0, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}))
