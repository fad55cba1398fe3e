"""The progress line: only on a terminal, only after its delay, cleared at the end of a phase. It is handed to
the API (Options.progress); there is no global one."""
import io

from builders import matmul_add_model
from passes.fc_to_conv import Options, convert, progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_on_a_terminal_and_clears():
    term = Terminal()
    convert(matmul_add_model(["n", 8], 8, 4, (4,)), Options(progress=progress.Progress(term, delay=0)))
    text = term.getvalue()
    assert "fc2conv: rewriting layers [" in text and "] 1/1" in text
    assert "fc2conv: running the original [" in text and "running the converted model" in text
    assert text.endswith("\r"), "the line is cleared at the end"


def test_no_progress_when_not_a_terminal_or_fast():
    pipe = io.StringIO()
    convert(matmul_add_model(["n", 8], 8, 4, (4,)), Options(progress=progress.Progress(pipe, delay=0)))
    assert pipe.getvalue() == ""
    term = Terminal()
    convert(matmul_add_model(["n", 8], 8, 4, (4,)), Options(verify=False, progress=progress.Progress(term, delay=3600)))
    assert term.getvalue() == ""
