"""Ticks: normalized trade / order-book / 1-minute-bar frames (Polars), instrument naming, and the
ClickHouse tables and writer they are stored with (plain Python, no Dagster)."""
