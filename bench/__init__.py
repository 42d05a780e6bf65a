"""Benchmarks: measured against the native ceilings of the same machine, in the same run."""
