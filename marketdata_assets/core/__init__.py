"""Dagster-free basics every layer shares."""
