"""One folder per domain: alphas (MongoDB), ticks (ClickHouse), bars (TimescaleDB)."""
