"""`make bench` / `python -m bench [name ...]`: run the benchmarks and print their reports."""

import sys

from bench import bars_load

BENCHMARKS = {"bars_load": bars_load.main}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHMARKS)
    sys.exit(max(BENCHMARKS[name]() for name in names))
