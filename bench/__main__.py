"""`make bench` / `python -m bench [name ...]`: run the benchmarks and print their reports."""

import importlib
import sys

# name -> module with a main() returning the exit status (non-zero: a target missed)
BENCHMARKS = {
    "bars_load": "bench.bars_load",
    "bars_completeness": "bench.bars_completeness",
    "alphas_import": "bench.alphas_import",
    "alphas_sensor": "bench.alphas_sensor",
    "ticks_load": "bench.ticks_load",
    "trade_id_holes": "bench.trade_id_holes",
    "factors": "bench.factors",
    "crypto_datasets": "bench.crypto_datasets",
    "imports": "bench.imports",
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; one of {', '.join(BENCHMARKS)}")
    sys.exit(max(importlib.import_module(BENCHMARKS[name]).main() for name in names))
