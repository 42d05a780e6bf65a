"""Checks of the TimescaleDB minute bars and monthly K-line (validation queries A-E and more)."""
