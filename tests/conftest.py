import os
import sys

# The tests import `passes` from the checkout and `builders` from this folder, installed or not.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def written_files_are_canonical(monkeypatch):
    """Every model that convert_file writes in any test is checked to be exactly what onnx.save would write."""
    from builders import assert_canonical
    from passes.fc_to_conv.files import model_io

    move = model_io.move_into_place

    def checked(folder, out):
        move(folder, out)
        assert_canonical(out)
    monkeypatch.setattr(model_io, "move_into_place", checked)
