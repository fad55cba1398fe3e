"""The tests can fail: scripts/check_mutations.py breaks the code in the ways a review found the suite blind to
(a negated weight, a bisection that finds nothing, shared weights never shared, kernel_shape dropped, ...) and
each must make the tests named for it fail."""
import subprocess
import sys

from test_cli import ROOT


def test_every_mutation_is_killed():
    r = subprocess.run([sys.executable, "scripts/check_mutations.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SURVIVED" not in r.stdout and r.stdout.count("killed") >= 20, r.stdout
