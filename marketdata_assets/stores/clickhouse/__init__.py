"""ClickHouse: the datasets' tables, the active-load pointer and ingest log, the idempotent writer and the
read views."""
