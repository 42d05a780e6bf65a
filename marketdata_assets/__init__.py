"""marketdata-assets: alphas, ticks and minute bars as one partitioned Dagster asset graph."""
