"""Crypto: the venues' REST history (trades, bars, funding, open interest, liquidations, mark/index
bars), snapshots (books, tickers, option chains), trade-id repair and factors, in ClickHouse."""
