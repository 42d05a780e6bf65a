"""Live capture: long-running collectors that read venues' WebSocket streams, land
every frame raw (stores/landing), keep books correct and publish normalized messages to NATS
JetStream (stores/jetstream). Dagster-free: the collector runs outside Dagster's runs; the batch
layer loads the closed landing hours. Design and what is still to come: docs/live-capture.md.

- `connection`: one WebSocket connection (subscribe, read, stale deadline, bounded queue, markers)
  and the pacing around connections (backoff, attempts per window, control messages per second).
- `binance_spot`: the collector core for Binance spot (trades and diff-depth books).
- `stats`: its counters.
- `load`: the batch side: closed landing hours of trade channels into the `trades` day slices
  through the ingest engine (called by defs/live's hourly `live_trades`).
- `dataset_load` (+ `dataset_rows`, what each venue lands of each dataset): the same for tickers,
  bars_1m, liquidations, open_interest and mark_funding (defs/live's `live_<dataset>`);
  `landing_hours`: what both loaders share (hour keys, reading a channel's closed files, figures).
"""
