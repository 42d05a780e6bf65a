"""TimescaleDB/Postgres: the stock_1min_qfq hypertable and its bootstrap, the COPY writer, the monthly K-line,
the loader's ledger tables."""
