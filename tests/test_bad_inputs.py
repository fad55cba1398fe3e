"""The CLI on every case of the bad-input corpus (scripts/make_bad_inputs.py): exit 2, one line on stderr naming
the problem, no traceback, nothing written."""
import importlib.util
import os
import re

import pytest

from test_cli import ROOT, cli

_spec = importlib.util.spec_from_file_location("make_bad_inputs", os.path.join(ROOT, "scripts", "make_bad_inputs.py"))
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return corpus.build(str(tmp_path_factory.mktemp("bad")))


def test_corpus_has_at_least_30_cases(cases):
    assert len(cases) >= 30
    assert len({name for name, _, _ in cases}) == len(cases)


def test_every_case_is_refused(cases, tmp_path):
    failures = []
    for name, path, expect in cases:
        out = tmp_path / (os.path.basename(path) + ".out.onnx")
        r = cli(path, out)
        lines = r.stderr.strip().splitlines()
        ok = (r.returncode == 2 and r.stdout == "" and len(lines) == 1 and "Traceback" not in r.stderr
              and lines[0].startswith("fc2conv: error: ") and expect in lines[0] and not out.exists()
              and not os.path.exists(str(out) + ".data"))
        if not ok:
            failures.append(f"{name}: rc={r.returncode} stderr={r.stderr.strip()[:300]!r}")
    assert not failures, "\n".join(failures)
    assert sorted(os.listdir(tmp_path)) == [], "nothing may be written"


def test_good_model_of_the_corpus_converts(tmp_path):
    import onnx
    src = tmp_path / "good.onnx"
    onnx.save(corpus.good_model(), str(src))
    r = cli(src, tmp_path / "out.onnx")
    assert r.returncode == 0, r.stderr
    assert "REVERTED" not in r.stdout and re.search(r"converted (\d+) of \1 fully connected layers", r.stdout), r.stdout
