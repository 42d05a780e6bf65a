"""Minute bars: CSV drops -> TimescaleDB stock_1min_qfq -> the monthly K-line (seeds 001, 004)."""
