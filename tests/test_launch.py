"""What a console line and the summary say about a run (marketdata_assets.apps.launch): a degraded store."""

from marketdata_assets.apps.launch import Outcome, summary


def test_a_degraded_store_is_on_the_runs_line_and_in_the_summary():
    reason = "TimescaleDB is not available (...): stock_1min_qfq is a plain PostgreSQL table (no chunks)"
    degraded = Outcome("minute bars 2026-01..2026-01", True, "0123456789ab", 3.2, assets=["stock_1min_qfq"],
                       partitions=["2026-01-01"], rows=100, degraded=[reason])
    plain = Outcome("monthly K-line 2026-01..2026-01", True, "ba9876543210", 1.0, assets=["stock_monthly_kline"])
    assert degraded.line() == ("[ok] minute bars 2026-01..2026-01: 1 asset, 1 partition, 100 rows, 3.2 s; "
                               f"DEGRADED: {reason}  (run 01234567)")
    assert "DEGRADED" not in plain.line()
    assert summary([degraded, plain]).endswith("; DEGRADED: minute bars 2026-01..2026-01")
    assert "DEGRADED" not in summary([plain])
