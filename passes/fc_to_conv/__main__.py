"""Command line: python -m passes.fc_to_conv IN.onnx OUT.onnx [options]

Exit codes: 0 converted (and verified, unless --no-verify); 1 verification failed, or an internal error, nothing
written; 2 bad input or usage, one line on stderr, nothing written.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import List, Optional

from .api import Options, convert_file
from .errors import BadInput
from .graph_pass import MODES
from .progress import Progress
from .rewrite.layout import LAYOUTS
from .targets.targets import TARGETS
from .verify.downstream import CHECKERS
from .verify.inputs import load_npz, parse_input_shapes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as for any bad input
        print(f"fc2conv: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(prog: str = "python -m passes.fc_to_conv") -> argparse.ArgumentParser:
    p = _Parser(prog=prog,
                description="Rewrite the fully connected layers of an ONNX model into convolutions, "
                            "verified against the original on onnxruntime.")
    p.add_argument("input", help="the model to convert (.onnx; external data is read from beside it)")
    p.add_argument("output", help="where to write the converted model (its folder must exist)")
    p.add_argument("--layout", choices=LAYOUTS, default="spatial",
                   help="how rows are laid out for the Conv: on the image width (spatial, default, fast on "
                        "onnxruntime) or as a batch of 1x1 images (batch)")
    p.add_argument("--mode", choices=MODES, default="full",
                   help="full (default): an FC layer fed by Flatten/Reshape of a [N,C,H,W] map becomes a Conv with "
                        "an HxW kernel on the map, the Flatten goes; 1x1: every layer becomes a 1x1 Conv")
    p.add_argument("--target", choices=tuple(TARGETS), default="onnxruntime",
                   help="the runtime the output is for (default onnxruntime); openvino keeps the attention's "
                        "head split as the model wrote it, which OpenVINO fuses into its attention kernel; ncnn "
                        "leaves attention projections for ncnn's fused attention; qnn (Qualcomm HTP) leaves layers "
                        "that feed a Tanh chain and writes Relus between layers as Max; rknn converts only Reshape-"
                        "wrapped layers (RKNN converts the others itself); ethos-u leaves every layer FC, which "
                        "Ethos-U runs better (see the README's Targets and Performance sections)")
    p.add_argument("--no-verify", action="store_true",
                   help="write the model without running it against the original (not recommended)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:DxD",
                   help="shape of an input for verification, e.g. input_ids:1x128 (repeatable)")
    p.add_argument("--inputs", metavar="FILE.npz", help="verify on your own input arrays, keyed by input name")
    p.add_argument("--input-sets", type=int, default=3, help="random input sets to verify on (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--rtol", type=float, help="max error normalized by the output's magnitude "
                                              "(default 1e-5 for fp32, 5e-3 when fp16 layers were rewritten)")
    p.add_argument("--atol", type=float, help="max absolute error accepted regardless of rtol "
                                              "(default 1e-6 for fp32, 1e-4 for fp16)")
    p.add_argument("--in-place", action="store_true",
                   help="allow OUT to be IN: the model file is replaced atomically (its external data files are "
                        "never written to; new data goes to a new file)")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1, nothing written) if any layer had to be reverted after failing verification")
    p.add_argument("--convert-dynamic", action="store_true",
                   help="also convert dynamically quantized layers (MatMulInteger -> ConvInteger); left alone by "
                        "default: onnxruntime's CPU ConvInteger is about 12x slower than MatMulInteger")
    p.add_argument("--check-with", choices=CHECKERS,
                   help="also read, compile and run the written model with this runtime (openvino: CPU, f32; qnn: the HTP emulator) and "
                        "compare its outputs with the original's; a failure is exit 1, nothing written "
                        "(needs pip install -e \".[openvino]\")")
    _tune_arguments(p)
    p.add_argument("--report", metavar="FILE.json", help="also write the report as JSON")
    p.add_argument("--quiet", action="store_true", help="print only failures")
    return p


def _tune_arguments(p: argparse.ArgumentParser) -> None:
    """--tune and the options of its measurements."""
    p.add_argument("--tune", action="store_true",
                   help="after verification, measure the original and the output on the target's own toolchain "
                        "and keep as FC the layers that measure slower as Convs (targets onnxruntime, openvino "
                        "and ncnn: CPU latency; qnn: HTP emulator cycles)")
    p.add_argument("--tune-rounds", type=int, default=5, metavar="N",
                   help="interleaved rounds of each --tune measurement (default 5)")
    p.add_argument("--tune-threads", type=int, default=1, metavar="N",
                   help="intra-op threads of the CPU toolchains' --tune measurements (default 1; 0: the runtime's "
                        "default); the inputs are measured at the --input-shape dims")
    p.add_argument("--toolchain-python", metavar="PYTHON",
                   help="the Python interpreter that runs the CPU toolchains' --tune measurements, for a toolchain "
                        "installed in a venv of its own (ncnn: pnnx brings torch); it needs numpy, onnx and "
                        "onnxruntime too")
    p.add_argument("--decisions", metavar="FILE.json",
                   help="with --tune: write the layers it kept as FC there; without: keep as FC the layers that file "
                        "names, unmeasured, so that a tuned conversion repeats byte for byte")


class Interrupted(BaseException):
    """SIGTERM or SIGINT: raised in the main thread so that every `finally` runs (the temporary folder beside the
    output is removed; nothing partial is left)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


# the output's folder or disk refuses the write (a full disk, a quota, permissions, a read-only file system): exit 2,
# the user's to fix; any other OSError is fc2conv's (the input was validated before the pass ran)
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG}


def _internal(path: str, exc: BaseException) -> int:
    if os.environ.get("FC2CONV_DEBUG"):
        raise exc
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    print(f"fc2conv: internal error while converting {path} ({type(exc).__name__}: {text}); nothing was "
          "written; please report it (set FC2CONV_DEBUG=1 for a traceback)", file=sys.stderr)
    return 1


def main(argv: Optional[List[str]] = None, prog: str = "python -m passes.fc_to_conv") -> int:
    args = build_parser(prog).parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    try:
        if args.input_sets < 1:
            raise BadInput("--input-sets must be at least 1")
        if args.tune_threads < 0 or args.tune_rounds < 1:
            raise BadInput(f"--tune-threads {args.tune_threads} / --tune-rounds {args.tune_rounds}: threads must be "
                           "0 (the runtime's default) or more, rounds 1 or more")
        if args.report and not os.path.isdir(os.path.dirname(os.path.abspath(args.report))):
            raise BadInput(f"--report {args.report}: its folder does not exist (nothing was converted or written)")
        options = Options(layout=args.layout, mode=args.mode, verify=not args.no_verify,
                          input_shapes=parse_input_shapes(args.input_shape),
                          inputs=load_npz(args.inputs) if args.inputs else None,
                          input_sets=args.input_sets, seed=args.seed, rtol=args.rtol, atol=args.atol,
                          strict=args.strict, check_with=args.check_with, convert_dynamic=args.convert_dynamic,
                          target=args.target, tune=args.tune, tune_rounds=args.tune_rounds,
                          tune_threads=args.tune_threads, toolchain_python=args.toolchain_python,
                          decisions=args.decisions,
                          progress=Progress(sys.stderr))  # shows only on a terminal, and only for long runs
        report = convert_file(args.input, args.output, options, in_place=args.in_place)
    except Interrupted as stop:
        print(f"fc2conv: interrupted ({signal.Signals(stop.signum).name}); nothing was written", file=sys.stderr)
        return 128 + stop.signum
    except BadInput as exc:
        print(f"fc2conv: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:   # not the place it writes to: fc2conv's own failure (below)
            return _internal(args.input, exc)
        print(f"fc2conv: error: {exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # fc2conv's own failure: exit 1, not 2 (2 means the input is bad); FC2CONV_DEBUG=1
        return _internal(args.input, exc)
    if not args.quiet or not report.written:
        print(report.text(), file=sys.stdout if report.written else sys.stderr)
    if args.report:
        with open(args.report, "w") as f:
            f.write(report.to_json())
    if not report.written:
        return 1
    return 0


def console() -> None:
    """The `fc2conv` command that pip installs."""
    sys.exit(main(prog="fc2conv"))


if __name__ == "__main__":
    sys.exit(main())
