"""Upkeep of the ClickHouse store: the store itself (tables, views, migrations), weekly compaction,
and the coverage picture of every 1-minute bar dataset."""
