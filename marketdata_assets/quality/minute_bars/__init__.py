"""Checks of the TimescaleDB minute bars and monthly K-line (seed 004's A-E and more)."""
