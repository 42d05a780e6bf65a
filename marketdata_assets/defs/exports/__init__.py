"""The Parquet export of the stores: `parquet_export`, one UTC day a partition
(marketdata_assets.read.export)."""
