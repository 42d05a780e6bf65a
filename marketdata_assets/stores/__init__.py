"""Where data lands, with no knowledge of any source: clickhouse/ (tables, load pointer, writer), timescale/
(minute bars, K-line, the loader's ledger), mongo/ (alpha documents, deep merge)."""
