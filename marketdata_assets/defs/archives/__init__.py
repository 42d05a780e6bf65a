"""Archives: Binance dump files dropped in a landing directory and data.binance.vision archives,
verified and loaded into the same ClickHouse slices as the REST data."""
