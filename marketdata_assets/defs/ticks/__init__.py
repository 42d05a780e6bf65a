"""Ticks: trades, order books and bars from five providers, normalized into ClickHouse (seeds 002, 003)."""
