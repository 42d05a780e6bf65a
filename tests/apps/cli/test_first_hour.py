"""The first hour's rough edges, each with its exact message: what a new user tried and what the project
said back (a usage error names the day and the bound, exit 2)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from tests.apps.cli.test_cli import in_process

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
