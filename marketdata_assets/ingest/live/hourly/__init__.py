"""The hourly loads (run by Dagster): closed landing hours → the datasets' day slices."""
