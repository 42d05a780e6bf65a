"""The first hour's rough edges, each with its exact message: what a new user tried and what the project
said back (a usage error names the day and the bound, exit 2)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from marketdata_assets.apps.cli.exports import export_root
from marketdata_assets.apps.cli.operate import retry_note
from marketdata_assets.apps.cli.session import Session
from marketdata_assets.apps.launch import launch
from tests.apps.cli.test_cli import in_process
from tests.support.ticks_dagster import (
    UNUSED,
    crypto_day,
    crypto_resources,
    stock_resources,
    ticks_definitions,
)

TODAY = datetime.now(UTC).date()


def usage_error(monkeypatch, *args: str) -> str:
    """The message of `marketdata args`, a usage error (exit 2)."""
    result = in_process(monkeypatch, os.environ, *args)
    assert result.exit_code == 2, result.output
    return result.stderr.splitlines()[-1]


def test_a_crypto_backfill_outside_its_days_says_which_bound_it_passed(monkeypatch):
    """Crypto partitions are every UTC day from universes.crypto.history_start up to yesterday: a day
    after today, today, or before the first is said as such (not "weekdays only")."""
    future = TODAY + timedelta(days=35)
    days = ("--start-date", f"{future}", "--end-date", f"{future}")
    assert usage_error(monkeypatch, "backfill", "crypto", *days) == (
        f"Error: Invalid value: {future} is after today ({TODAY}): no crypto partition yet"
    )
    days = ("--start-date", f"{TODAY}", "--end-date", f"{TODAY}")
    assert usage_error(monkeypatch, "backfill", "crypto", *days) == (
        f"Error: Invalid value: {TODAY} is today (UTC): no crypto partition until the day is over"
    )
    days = ("--start-date", "2021-12-30", "--end-date", "2021-12-31")
    assert usage_error(monkeypatch, "backfill", "crypto", *days) == (
        "Error: Invalid value: 2021-12-30..2021-12-31 is before the first crypto partition, 2022-01-01 "
        "(universes.crypto.history_start in data_providers.yaml)"
    )
    days = ("--start-date", "2024-12-31", "--end-date", "2024-12-31")
    assert usage_error(monkeypatch, "backfill", "archives", *days) == (
        "Error: Invalid value: 2024-12-31 is before the first archives partition, 2025-01-01 "
        "(binance_archives.start_date in data_providers.yaml)"
    )
    # a stock calendar's weekend is still its own message
    days = ("--start-date", "2025-06-07", "--end-date", "2025-06-08")
    assert usage_error(monkeypatch, "backfill", "a_shares", *days) == (
        "Error: Invalid value: no partition between 2025-06-07 and 2025-06-08 (weekdays only)"
    )


def test_an_offline_crypto_run_leads_with_its_cause_counts_the_skipped_steps_and_says_how_to_retry(
    clickhouse, monkeypatch, capsys
):
    """Vendors unreachable: one line per failed step with the root error (not ~900 characters of slices
    first), one line counting the checks not executed (Dagster logs one each), and a command that exists
    (the same again: a backfill fetches only what is not loaded); the exit code is the run's verdict's."""
    day = TODAY - timedelta(days=1)
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = launch(
            f"crypto {day}",
            ticks_definitions(),
            instance=instance,
            resources={**crypto_resources(UNUSED), **stock_resources(UNUSED), "clickhouse": clickhouse},
            selection=[dg.AssetKey("crypto_trades")],
            tags=crypto_day(day, ["BINANCE:BTCUSDT"])["tags"],
            run_config={"ops": {"crypto_ticks": {"config": {"instruments": ["BINANCE:BTCUSDT"]}}}},
        )
    assert outcome.state == "FAILED"
    assert outcome.error_lines() == [
        (
            f"FAILED: crypto {day}: step crypto_ticks (partitions {day}|BINANCE): ConnectError: All "
            f"connection attempts failed (vendor unreachable: BINANCE; 1 of 1 failed slices) "
            f"(run {outcome.run_id[:8]})"
        ),
        f"skipped: crypto {day}: 5 downstream steps not executed (what they depend on failed)",
    ]
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the session applies the defaults
    session = Session(demo=False)
    session.outcomes.append(outcome)
    session.retry_note = retry_note(refetch=False)
    assert session.finish() == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "to retry: run the same command again (it fetches only the slices not loaded yet)"
    )


def test_an_export_root_where_none_can_be_made_is_refused(monkeypatch, tmp_path):
    """`--root /nonexistent` created a directory at the filesystem root: a new root needs an existing parent
    other than `/`; an existing directory, or a new one inside one, is taken as it is."""
    assert usage_error(monkeypatch, "export", "--root", "/nonexistent") == (
        "Error: Invalid value for --root: /nonexistent does not exist: not creating a directory at the "
        "filesystem root; name an existing directory or a new one inside one"
    )
    missing = tmp_path / "no" / "export"
    assert usage_error(monkeypatch, "export", "--root", str(missing)) == (
        f"Error: Invalid value for --root: {missing} does not exist, nor does its parent {missing.parent}: "
        "name an existing directory or a new one inside an existing directory"
    )
    assert export_root(None, None, tmp_path) == tmp_path
    assert export_root(None, None, tmp_path / "export") == tmp_path / "export"
    assert not (tmp_path / "export").exists()  # made by the export, not by the check
