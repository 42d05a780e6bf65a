"""Live: the collector's closed landing hours (ingest/live) loaded into the same ClickHouse slices as
the REST and archive data, hour by hour, with the trades checks, trade-id continuity and its refill,
and the collector's health per landing hour (docs/live-loads.md)."""
