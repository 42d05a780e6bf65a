"""The consumer process: JetStream's normalized trades → ClickHouse's live table."""
