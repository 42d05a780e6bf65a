"""The compiled hot path (core/compiled.py): Cython modules built beside their pure-Python originals by
`make install` (an editable install builds them in place). A machine with no C compiler installs
without them (`optional`), and the originals run."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

SOURCES = sorted(Path("marketdata_assets").rglob("_*.pyx"))
EXTENSIONS = [
    Extension(".".join(path.with_suffix("").parts), [str(path)], optional=True, extra_compile_args=["-O2"])
    for path in SOURCES
]

setup(ext_modules=cythonize(EXTENSIONS, language_level=3, quiet=True))
