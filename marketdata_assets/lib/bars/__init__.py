"""Minute bars: CSV profiles and parsing, PGCOPY writers, DataFrame transforms (plain Python, no Dagster)."""
