"""Ticks: trades, order books and bars from five sources, normalized into ClickHouse (seeds 002, 003)."""
