"""The command line, run as a user runs it: by subprocess, including the README's Quick start command."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from builders import assert_canonical, matmul_add_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=ROOT):
    """Run the CLI; whatever it writes must be a canonical ONNX file (checked here for every test)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "passes.fc_to_conv", *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    out = os.path.join(str(cwd), str(args[1])) if len(args) > 1 else ""
    if r.returncode == 0 and os.path.isfile(out):
        assert_canonical(out)
    return r


def quick_start_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = re.search(r"^## Quick start\n(.*?)^## ", text, re.S | re.M).group(1)
    return re.findall(r"^```(?:sh|bash)?\n(.*?)\n```", section, re.S | re.M)


def test_readme_quick_start_has_two_commands():
    cmds = quick_start_commands()
    assert len(cmds) == 2
    assert "pip install" in cmds[0] and "passes.fc_to_conv" in cmds[0]
    assert "pip install" in cmds[1] and "pytest" in cmds[1]


def test_readme_conversion_command_works(tmp_path):
    """The first Quick start command, after its install step, run verbatim in a copy of the checkout's models."""
    convert_cmd = quick_start_commands()[0].split("&&")[-1].strip()
    shutil.copytree(os.path.join(ROOT, "models"), tmp_path / "models")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # `python` is this one
    r = subprocess.run(convert_cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = convert_cmd.split()[-1]
    assert (tmp_path / out).exists()
    assert_canonical(tmp_path / out)
    assert "PASSED" in r.stdout.splitlines()[-1]
    assert "converted 13 of 17 fully connected layers" in r.stdout and "REVERTED" not in r.stdout


def test_convert_report_and_exit_0(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4, (4,)), str(src))
    r = cli(src, tmp_path / "out.onnx", "--report", tmp_path / "r.json", "--input-shape", "X:5x8")
    assert r.returncode == 0, r.stderr
    assert "CONVERTED MatMul 'matmul' + Add 'add': input [n, 8] weight [8, 4] -> Conv 'matmul_conv'" in r.stdout
    assert "PASSED | output 'Y' | max_abs=" in r.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["written"] and rep["verification"]["passed"]
    assert rep["converted"][0]["conv_weight_shape"] == [4, 8, 1, 1]
    assert rep["ops_before"] == {"Add": 1, "MatMul": 1}
    assert rep["ops_after"] == {"Conv": 1, "Reshape": 2, "Transpose": 2}


def test_no_verify_and_batch_layout(tmp_path):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model([4, 8], 8, 4, (4,)), str(src))
    r = cli(src, tmp_path / "out.onnx", "--no-verify", "--layout", "batch")
    assert r.returncode == 0
    assert "verification: skipped (--no-verify)" in r.stdout
    assert [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node] == ["Reshape", "Conv", "Reshape"]


def assert_bad_input(r, message, tmp_path, keep=()):
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("fc2conv: error: ") and message in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep), "nothing may be written"


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(os.urandom(1000)), "not an ONNX model"),
    (lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\n"), "a Git LFS pointer"),
])
def test_bad_input_files(tmp_path, setup, message):
    src = tmp_path / "in.onnx"
    setup(src)
    r = cli(src, tmp_path / "out.onnx")
    assert_bad_input(r, message, tmp_path, keep=[src.name] if src.exists() else [])


def test_unreadable_external_data(tmp_path):
    m = matmul_add_model(["n", 64], 64, 32)
    onnx.save_model(m, str(tmp_path / "in.onnx"), save_as_external_data=True, location="in.data", size_threshold=0)
    (tmp_path / "in.data").unlink()
    r = cli(tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert_bad_input(r, "external data 'in.data': file not found", tmp_path, keep=["in.onnx"])


@pytest.mark.parametrize("args,message", [
    (["--layout", "diagonal"], "invalid choice: 'diagonal'"),
    (["--input-shape", "X"], "expected NAME:DxD"),
    (["--input-shape", "nope:1x8"], "'nope' is not an input of the model"),
    (["--inputs", "missing.npz"], "not a readable .npz file"),
    (["--input-sets", "0"], "--input-sets must be at least 1"),
])
def test_usage_errors(tmp_path, args, message):
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4), str(src))
    r = cli(src, tmp_path / "out.onnx", *args)
    assert_bad_input(r, message, tmp_path, keep=["in.onnx"])


def test_reverted_layer_and_strict(tmp_path):
    """A tolerance of 0 on a layer whose rewrite differs by kernel rounding: the layer is reverted and the model
    written without it; with --strict that is a failure: exit 1, nothing written."""
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 512], 512, 64, (64,)), str(src))
    args = [src, tmp_path / "out.onnx", "--layout", "batch", "--rtol", "0", "--atol", "0"]
    r = cli(*args, "--strict")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REVERTED  MatMul 'matmul': wrong on its own: output 'Y' max_abs=" in r.stderr
    assert "FAILED (--strict): layers were reverted; the model was not written" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]
    r = cli(*args)
    assert r.returncode == 0
    assert "converted 0 of 1 fully connected layers (1 reverted after failing verification)" in r.stdout
    assert [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node] == ["MatMul", "Add"]


def test_unverifiable_model_exits_1_and_writes_nothing(tmp_path):
    """The original cannot run on generated inputs (a Reshape to a fixed batch): exit 1 with the fix named."""
    from onnx import helper
    from builders import init, make_model, rand, vi
    import numpy as np
    nodes = [helper.make_node("Reshape", ["X", "s"], ["r"]), helper.make_node("MatMul", ["r", "W"], ["Y"])]
    m = make_model(nodes, [vi("X", ["n", 4])], [vi("Y", [2, 3])],
                   [init("s", np.array([2, 4], np.int64)), init("W", rand((4, 3)))])
    src = tmp_path / "in.onnx"
    onnx.save(m, str(src))
    r = cli(src, tmp_path / "out.onnx")
    assert r.returncode == 1
    line = next(x for x in r.stderr.splitlines() if x.startswith("  FAILED | "))
    assert line.startswith("  FAILED | the original model fails on every input tried (X [2, 4] / [3, 4] / [4, 4]; "
                           "X [1, 4]; ")
    assert line.endswith("give real shapes with --input-shape NAME:DxD or data with --inputs FILE.npz")
    assert "FAILED: the model was not written" in r.stderr and "E:onnxruntime" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]
    assert cli(src, tmp_path / "out.onnx", "--input-shape", "X:2x4").returncode == 0


def test_an_internal_error_is_exit_1_not_bad_input(tmp_path, monkeypatch, capsys):
    """A failure of fc2conv itself is not the input's fault: exit 1, one line that says so, nothing written."""
    from passes.fc_to_conv import __main__ as main_module
    src = tmp_path / "in.onnx"
    onnx.save(matmul_add_model(["n", 8], 8, 4, (4,)), str(src))

    def broken(*args, **kwargs):
        raise ValueError("negative dimensions are not allowed")
    monkeypatch.setattr(main_module, "convert_file", broken)
    monkeypatch.delenv("FC2CONV_DEBUG", raising=False)
    assert main_module.main([str(src), str(tmp_path / "out.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"fc2conv: internal error while converting {src} (ValueError: negative dimensions are not "
                   "allowed); nothing was written; please report it (set FC2CONV_DEBUG=1 for a traceback)")
    assert sorted(os.listdir(tmp_path)) == ["in.onnx"]


def test_nothing_is_written_into_the_current_directory(tmp_path):
    """The CLI runs from an empty folder on a model with a custom op (onnx's inference stops there, so onnxruntime's
    symbolic inference runs) and leaves that folder empty. (When onnxruntime's inference is incomplete, its
    infer_shapes saves sym_shape_infer_temp.onnx and a <uuid>.data file into the current directory; shapes.py runs
    its steps without that save. This small model does not make it incomplete: ddddocr's common_old.onnx did.)"""
    from builders import init, make_model, vi
    from onnx import helper
    import numpy as np
    w = init("W", np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    nodes = [helper.make_node("Foo", ["X"], ["h"], domain="custom.ops"),
             helper.make_node("MatMul", ["h", "W"], ["Y"], name="fc")]
    m = make_model(nodes, [vi("X", ["B", 8])], [vi("Y", ["B", 4])], [w])
    m.opset_import.append(helper.make_opsetid("custom.ops", 1))
    src, out, cwd = tmp_path / "in" / "m.onnx", tmp_path / "out" / "m.onnx", tmp_path / "cwd"
    for d in (src.parent, out.parent, cwd):
        d.mkdir()
    onnx.save(m, str(src))
    r = cli(src, out, "--no-verify", cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(out.parent)) == ["m.onnx"]


def test_reported_peak_memory_is_the_runs_own(tmp_path):
    """The report's peak memory is the CLI process's own high-water mark: started from a parent that has touched
    600 MB, a run on the 0.1 MB MLP reports well under that (ru_maxrss, which Linux carries over from the parent
    across exec, reported the parent's peak)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("VmHWM is Linux's")
    ballast = bytearray(600 * 2**20)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    r = cli(os.path.join(ROOT, "models", "mlp.onnx"), tmp_path / "out.onnx", "--report", tmp_path / "r.json")
    del ballast
    assert r.returncode == 0, r.stderr
    peak = json.loads((tmp_path / "r.json").read_text())["peak_rss_bytes"]
    assert 10 * 2**20 < peak < 450 * 2**20, peak


def test_report_into_a_missing_folder_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out.onnx"
    r = cli(os.path.join(ROOT, "models", "mlp.onnx"), out, "--report", tmp_path / "missing" / "r.json")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"fc2conv: error: --report {tmp_path / 'missing' / 'r.json'}: its folder does not exist (nothing was "
        "converted or written)"]
    assert os.listdir(tmp_path) == []


def test_an_initializer_whose_data_does_not_fill_its_dims_is_bad_input(tmp_path):
    """128 floats under dims [3, 8]: exit 2 with one line naming the tensor, nothing written (it was exit 1,
    "internal error ... cannot reshape array of size 128 into shape (3,8)")."""
    m = matmul_add_model(["B", 8], 8, 3)
    w = m.graph.initializer[0]
    w.raw_data = np.zeros(128, np.float32).tobytes()
    src, out = tmp_path / "bad.onnx", tmp_path / "out.onnx"
    src.write_bytes(m.SerializeToString())
    r = cli(src, out)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fc2conv: error: tensor 'W' is malformed: its data does not "
                                                   "match its dims [8, 3]"), lines
    assert not out.exists()


def test_the_installed_fc2conv_command_is_the_cli(tmp_path):
    """`pip install` puts an `fc2conv` command beside `python -m passes.fc_to_conv` (setup.cfg's entry point)."""
    exe = shutil.which("fc2conv") or os.path.join(os.path.dirname(sys.executable), "fc2conv")
    if not os.path.exists(exe):
        pytest.skip("the package is not installed (pip install -e .)")
    out = tmp_path / "out.onnx"
    r = subprocess.run([exe, os.path.join(ROOT, "models", "mlp.onnx"), str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "converted 3 of 3" in r.stdout, r.stdout + r.stderr
    assert_canonical(out)
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("usage: fc2conv "), r.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_run_leaves_nothing_behind(signum, tmp_path):
    """Stopped while it works (its temporary folder exists beside the output), the CLI removes that folder, writes
    no output, says so in one line and exits 128 + the signal (SIGTERM left a .fc2conv-XXXX folder with a partial
    data file; SIGINT printed a traceback)."""
    out = tmp_path / "out.onnx"
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-m", "passes.fc_to_conv", os.path.join(ROOT, "models", "gpt_tiny.onnx"),
                          str(out), "--input-sets", "30", "--input-shape", "input_ids:32x128"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(n.startswith(".fc2conv-") for n in os.listdir(tmp_path)) and p.poll() is None \
            and time.time() < deadline:
        time.sleep(0.005)
    assert p.poll() is None, "the run ended before it could be stopped"
    time.sleep(0.1)   # into the work (the whole run takes about 1.8 s here)
    p.send_signal(signum)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + signum, stdout + stderr
    assert stderr.strip().splitlines() == [
        f"fc2conv: interrupted ({signal.Signals(signum).name}); nothing was written"], stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error,code,start", [
    (FileNotFoundError(2, "No such file or directory", "/x/fc2conv:held"), 1,
     "fc2conv: internal error while converting in.onnx (FileNotFoundError: [Errno 2] No such file or directory: "),
    (OSError(28, "No space left on device", "out.onnx"), 2, "fc2conv: error: out.onnx: No space left on device"),
])
def test_an_oserror_inside_the_pass_is_internal_and_a_refused_write_is_the_users(error, code, start, monkeypatch,
                                                                                 capsys):
    """A file the pass itself cannot find is fc2conv's bug (exit 1, 'internal error'; the held tensor read back
    from disk was reported as the user's problem, exit 2); a full disk is the user's to fix (exit 2)."""
    from passes.fc_to_conv import __main__ as cli_main

    def fail(*a, **k):
        raise error
    monkeypatch.setattr(cli_main, "convert_file", fail)
    assert cli_main.main(["in.onnx", "out.onnx"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(start), err


def test_an_incomplete_symbolic_inference_writes_nothing_into_the_current_directory(tmp_path, monkeypatch):
    """onnxruntime's SymbolicShapeInference, made to report an incomplete inference (as on ddddocr's
    common_old.onnx), saves sym_shape_infer_temp.onnx and a <uuid>.data file into the current directory from its
    infer_shapes; fc2conv runs its steps without that save, so the folder stays empty."""
    from onnx import helper
    from builders import init, make_model, vi
    from passes.fc_to_conv import Options, convert
    from passes.fc_to_conv.graph import shapes
    cls = shapes._symbolic_shape_inference()
    real = cls._infer_impl
    monkeypatch.setattr(cls, "_infer_impl", lambda self, *a, **k: real(self, *a, **k) and False)
    monkeypatch.setattr(shapes, "_symbolic_shape_inference", lambda: cls)
    w = init("W", np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    nodes = [helper.make_node("Foo", ["X"], ["h"], domain="custom.ops"),
             helper.make_node("MatMul", ["h", "W"], ["Y"], name="fc")]
    m = make_model(nodes, [vi("X", ["B", 8])], [vi("Y", ["B", 4])], [w])
    m.opset_import.append(helper.make_opsetid("custom.ops", 1))
    monkeypatch.chdir(tmp_path)
    convert(m, Options(verify=False))
    assert os.listdir(tmp_path) == []
