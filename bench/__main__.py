"""`make bench` / `python -m bench [name ...]`: run the benchmarks and print their reports.
`python -m bench imports|compare|capacity|live_capture|live_consumer|live_floor|run_storage|book_path
[options]`: those taking options (see their modules)."""

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
    "archive_day": "bench.archive_day",
    "factors": "bench.factors",
    "crypto_datasets": "bench.crypto_datasets",
    "imports": "bench.imports",
    "read": "bench.read",
    "server_read": "bench.server_read",
    "live_capture": "bench.live_capture",
    "live_consumer": "bench.live_consumer",
    "live_floor": "bench.live_floor",
}
# name -> module whose main(argv) reads the rest of the command line; not part of a plain `make bench`
WITH_OPTIONS = {
    "imports": "bench.imports",
    "compare": "bench.compare",  # two trees' data-path benches interleaved (old layout vs new)
    "capacity": "bench.capacity",  # the capacity model of docs/scale-out.md (no benchmark: arithmetic)
    "live_capture": "bench.live_capture",  # --duration-s, --short, --universe N, ... (plain `make bench`:
    # the defaults)
    "live_consumer": "bench.live_consumer",  # --trades, --rounds
    "live_floor": "bench.live_floor",  # --messages, --rounds, --ceiling-us
    "live_path": "bench.live_path",  # --frames, --rounds, --tree: the collector's path, stage by stage
    "run_storage": "bench.run_storage",  # --rounds, --assets: Dagster's storage connections per run
    "stack_start": "bench.stack_start",  # --tree OLD, --rounds, --services: `scripts/stack up`, first
    # start and restart per server
    "archive_day": "bench.archive_day",  # --tree DIR: the asset path of another checkout in the same rounds
    "archive_fuzz": "bench.archive_fuzz",  # --tree OLD --tree NEW: mutated archives, the same answers?
    "book_path": "bench.book_path",  # --books, --per-book, --runs, --no-peer: our book path vs cryptofeed's
    "noted_levels": "bench.noted_levels",  # --rounds, --no-callgrind: a Binance depth diff's instructions
    "universe": "bench.universe",  # --spot, --usdm, --trades-per-day, --rounds: a backfill via Dagster vs
    # direct; --resolve [--rounds --days]: the capacity model's universe from the venues' reference data
}

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in WITH_OPTIONS:
        sys.exit(importlib.import_module(WITH_OPTIONS[sys.argv[1]]).main(sys.argv[2:]))
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; one of {', '.join(BENCHMARKS)}")
    sys.exit(
        max(
            importlib.import_module(BENCHMARKS[name]).main(*([[]] if name in WITH_OPTIONS else []))
            for name in names
        )
    )
