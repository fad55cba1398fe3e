# Kept only so that `pip install -e .` works with older pip/setuptools; all metadata lives in setup.cfg.
from setuptools import setup

setup()
