"""Equities: A-share and Yahoo bars from the vendors' APIs into ClickHouse, and A-share minute bars
from CSV drops into TimescaleDB with the monthly K-line."""
