"""The progress line: only on a terminal, only after its delay, cleared at the end of a phase."""
import io

from builders import matmul_add_model
from passes.fc_to_conv import Options, convert, progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_on_a_terminal_and_clears(monkeypatch):
    term = Terminal()
    monkeypatch.setattr(progress, "current", progress.Progress(term, delay=0))
    convert(matmul_add_model(["n", 8], 8, 4, (4,)))
    text = term.getvalue()
    assert "fc2conv: rewriting layers [" in text and "] 1/1" in text
    assert "fc2conv: running the original [" in text and "running the converted model" in text
    assert text.endswith("\r"), "the line is cleared at the end"


def test_no_progress_when_not_a_terminal_or_fast(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(progress, "current", progress.Progress(pipe, delay=0))
    convert(matmul_add_model(["n", 8], 8, 4, (4,)))
    assert pipe.getvalue() == ""
    term = Terminal()
    monkeypatch.setattr(progress, "current", progress.Progress(term, delay=3600))
    convert(matmul_add_model(["n", 8], 8, 4, (4,)), Options(verify=False))
    assert term.getvalue() == ""
