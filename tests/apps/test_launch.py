"""What a console line and the summary say about a run (marketdata_assets.apps.launch): a degraded store,
an asset that could not do everything (`partial`)."""

from marketdata_assets.apps.launch import Outcome, exit_code, summary


def test_a_degraded_store_is_on_the_runs_line_and_in_the_summary():
    reason = "TimescaleDB is not available (...): stock_1min_qfq is a plain PostgreSQL table (no chunks)"
    degraded = Outcome(
        "minute bars 2026-01..2026-01",
        True,
        "0123456789ab",
        3.2,
        assets=["stock_1min_qfq"],
        partitions=["2026-01-01"],
        rows=100,
        degraded=[reason],
    )
    plain = Outcome(
        "monthly K-line 2026-01..2026-01", True, "ba9876543210", 1.0, assets=["stock_monthly_kline"]
    )
    assert degraded.line() == (
        "[ok] minute bars 2026-01..2026-01: 1 asset, 1 partition, 100 rows, 3.2 s; "
        f"DEGRADED: {reason}  (run 01234567)"
    )
    assert "DEGRADED" not in plain.line()
    assert summary([degraded, plain]).endswith("; DEGRADED: minute bars 2026-01..2026-01")
    assert "DEGRADED" not in summary([plain])


def test_an_asset_saying_what_it_could_not_do_makes_the_run_partial_not_failed():
    why = "crypto_trades: 2 slice(s) past the venue's REST history, not fetched and not stored: ..."
    partial = Outcome(
        "crypto 2026-08-01",
        True,
        "0123456789ab",
        2.0,
        assets=["crypto_trades"],
        partitions=["2026-08-01|BINANCE_UM"],
        rows=0,
        checks_passed=1,
        checks=2,
        warnings=["crypto_trades:within_rest_reach[2026-08-01|BINANCE_UM]"],
        partial=[why],
    )
    assert partial.success and partial.state == "partial"
    assert partial.line() == (
        "[partial] crypto 2026-08-01: 1 asset, 1 partition, 0 rows, 1/2 checks passed "
        f"(1 warning), 2.0 s; partial: {why}; warnings: "
        "crypto_trades:within_rest_reach[2026-08-01|BINANCE_UM]  (run 01234567)"
    )
    many = Outcome("x", True, "0123456789ab", 1.0, partial=[f"a{i}: {i} rows rejected" for i in range(5)])
    assert many.line().startswith(
        "[partial] x: 0 assets, 0 rows, 1.0 s; partial: a0: 0 rows rejected; "
        "a1: 1 rows rejected; a2: 2 rows rejected (+2)"
    )
    # failed wins over partial; a run without `partial` reads exactly as before
    failed = Outcome("y", False, "ba9876543210", 1.0, partial=["y: 1 row rejected"])
    plain = Outcome("z", True, "ba9876543210", 1.0, assets=["z"], rows=5)
    assert failed.state == "FAILED" and failed.line().startswith("[FAILED] y:")
    assert plain.line() == "[ok] z: 1 asset, 5 rows, 1.0 s  (run ba987654)"
    assert summary([partial, plain, failed]).startswith(
        "1/3 steps ok, 1 partial, 5 rows, 1/2 checks passed, 4.0 s; failed: y (run ba9876543210)"
    )
    assert summary([plain]) == "1/1 steps ok, 5 rows, 0/0 checks passed, 1.0 s"
    # the README's sample reads such a line back (apps.readme): the same line, the same summary
    from marketdata_assets.apps.readme import parse_step

    for outcome in (partial, many):
        again = parse_step(outcome.line())
        assert again.state == "partial" and again.line() == outcome.line()
    assert summary([parse_step(partial.line()), plain]).startswith("1/2 steps ok, 1 partial, ")
    # the command's exit code: its worst run's, a partial one told from a failure
    checked = Outcome("c", True, "0123456789ab", 1.0, failed_checks=["c:x"])
    assert [exit_code(o) for o in ([plain], [plain, checked], [plain, partial], [partial, failed], [])] == [
        0,
        0,
        4,
        1,
        0,
    ]


def test_slices_left_to_a_more_faithful_source_are_on_the_line_and_the_run_stays_ok():
    said = "crypto_trades: 1 slice covered by BINANCE_ARCHIVE"
    covered = Outcome(
        "crypto 2025-01-02",
        True,
        "0123456789ab",
        1.2,
        assets=["crypto_trades"],
        partitions=["2025-01-02|BINANCE"],
        checks_passed=4,
        checks=5,
        covered=[said],
        warnings=["crypto_trades:within_rest_reach[2025-01-02|BINANCE]"],
    )
    assert covered.state == "ok"
    assert covered.line() == (
        "[ok] crypto 2025-01-02: 1 asset, 1 partition, 0 rows, 4/5 checks passed (1 warning), "
        "1.2 s; "
        f"covered: {said}; warnings: crypto_trades:within_rest_reach[2025-01-02|BINANCE]"
        "  (run 01234567)"
    )
    from marketdata_assets.apps.readme import parse_step

    both = Outcome("x", True, "0123456789ab", 1.0, partial=["a: 2 rows rejected"], covered=[said])
    for outcome in (covered, both):  # read back (apps.readme) as the same line
        again = parse_step(outcome.line())
        assert again.covered == outcome.covered and again.partial == outcome.partial
        assert again.line() == outcome.line()


def test_a_run_that_found_everything_stored_says_so_beside_its_zero_rows():
    """An alpha re-import writes no document (every one unchanged): "0 rows" alone read as nothing done."""
    again = Outcome(
        "alphas 2026-08..2026-10",
        True,
        "0123456789ab",
        1.9,
        assets=["a"] * 4,
        partitions=["p"] * 3,
        rows=0,
        unchanged=284,
        checks_passed=8,
        checks=8,
    )
    assert again.line() == (
        "[ok] alphas 2026-08..2026-10: 4 assets, 3 partitions, 0 rows (284 unchanged), "
        "8/8 checks passed, 1.9 s  (run 01234567)"
    )
    from marketdata_assets.apps.readme import parse_step

    assert parse_step(again.line()).line() == again.line()


def test_a_check_of_error_severity_that_failed_is_never_behind_ok():
    """A run that stored what it fetched but failed a check of ERROR severity says `[checks failed]`, naming
    the check; the summary does not count it ok; the README's sample reads the line back."""
    from marketdata_assets.apps.readme import parse_step

    unchecked = Outcome(
        "a-share ingest 2025-06-02..2025-06-06",
        True,
        "0123456789ab",
        4.0,
        assets=["a_share_bars_1m"],
        partitions=["2025-06-02"],
        rows=241,
        checks_passed=3,
        checks=4,
        failed_checks=["a_share_bars_1m:minutes_complete[2025-06-02]"],
    )
    assert unchecked.state == "checks failed"
    both = Outcome("x", True, "0123456789ab", 1.0, failed_checks=["x:c"], partial=["a: 1 row rejected"])
    assert both.state == "partial" and "; failed checks: x:c" in both.line()  # what it could not do first
    assert unchecked.line().startswith(
        "[checks failed] a-share ingest 2025-06-02..2025-06-06: 1 asset, 1 partition, "
        "241 rows, 3/4 checks passed, 4.0 s; "
    )
    assert "; failed checks: a_share_bars_1m:minutes_complete[2025-06-02]" in unchecked.line()
    plain = Outcome("z", True, "ba9876543210", 1.0, assets=["z"], rows=5)
    assert summary([unchecked, plain]).startswith(
        "1/2 steps ok, 1 with failed checks, 246 rows, 3/4 checks passed"
    )
    again = parse_step(unchecked.line())
    assert again.state == "checks failed" and again.line() == unchecked.line()


def test_steps_that_failed_alike_as_a_store_went_away_are_one_line_naming_the_server():
    """A ClickHouse server dying during the checks failed each check step with urllib3's 'Max retries
    exceeded with url: /?...session_id=...' (seven raw lines): now one line for the steps that failed
    alike, naming the server and what to do, no URL."""
    from types import SimpleNamespace

    from marketdata_assets.apps.launch import error_line

    raw = (
        "urllib3.exceptions.MaxRetryError: HTTPConnectionPool(host='127.0.0.1', port=58123): Max retries "
        "exceeded with url: /?query_id=4f2&session_id=9c1&database=marketdata (Caused by NewConnectionError("
        "'<urllib3.connection.HTTPConnection object at 0x7f0>: Failed to establish a new connection: [Errno "
        "111] Connection refused'))"
    )
    said = error_line(SimpleNamespace(message=raw, cls_name="MaxRetryError", cause=None))
    assert said == (
        "the server at 127.0.0.1:58123 did not answer ([Errno 111] Connection refused): is it running? "
        "(the local stack: `make stack-up`)"
    )
    steps = {f"step check_{k}": said for k in range(7)} | {"step load": "a bad row"}
    outcome = Outcome("crypto 2026-03-02", False, "0123456789", 1.0, errors=steps)
    lines = outcome.error_lines()
    assert len(lines) == 2 and "session_id" not in "".join(lines), lines
    assert lines[0].startswith(
        "FAILED: crypto 2026-03-02: 7 steps (check_0, check_1, check_2, check_3, check_4 +2)"
    )
    assert lines[1] == "FAILED: crypto 2026-03-02: step load: a bad row (run 01234567)"
