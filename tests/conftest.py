import os
import sys

# The tests import `passes` from the checkout and `builders` from this folder, installed or not.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
