"""Only the optional C accelerator lives here; everything else is in pyproject.toml.

``optional=True``: where it cannot be compiled (no C compiler or no Python headers), the
install still succeeds and portico runs on the pure-Python paths it falls back to.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("portico.protocols._speedups", ["portico/protocols/_speedups.c"],
              optional=True, extra_compile_args=["-O2"]),
])
