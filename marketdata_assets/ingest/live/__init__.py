"""Live capture, one room per process (docs/live-capture.md):

- `collect/`: the collector process. Venues' WebSocket streams read (`ws_client`, `connection`, `slots`),
  every frame landed raw (`batch_landing`), books kept correct (`books`, `book_outputs`), normalized
  messages published to NATS JetStream (`publishing`), load shed under overflow (`shedding`); `collector`
  ties them together, `parts` splits a universe over several collectors.
- `consume/`: the consumer process. JetStream's trades into ClickHouse's live table (`consumer`, `sinks`).
- `hourly/`: the loads Dagster runs every hour. Closed landing hours into the day slices: trades (`load`,
  `trade_frames`), the other datasets (`dataset_load`, `dataset_rows`), what both share (`landing_hours`).
- `stats`: the collector's and the consumer's counters.

Dagster-free: the processes run outside Dagster's runs; defs/live wires the hourly loads.
"""
