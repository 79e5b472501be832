# The C core is built by cffi; pyproject.toml holds everything else.
from setuptools import setup

setup(cffi_modules=["csrc/build_core.py:ffibuilder"])
