"""The ClickHouse datasets' checks as declared (quality/slice_checks.py) on the embedded ClickHouse:
one verdict per partition of a range (a partition without a load too), with the violations, the
rows checked and a sample whose prices read at full precision; snapshots name their latest day;
a provisional calendar day is a WARN; trade-id continuity says what it could not check. And the
shape itself (quality/checks.py): a judge must answer every partition it was asked for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.core.markdown import Markdown
from marketdata_assets.datasets.frames import TRADES_SCHEMA, as_schema
from marketdata_assets.datasets.slices import SliceKey, slices_of
from marketdata_assets.datasets.wire import columns_of
from marketdata_assets.quality.checks import (
    CLICKHOUSE,
    DAY_INSTRUMENT,
    ERROR,
    INSTRUMENT,
    WARN,
    Check,
    ClickHouse,
    Verdict,
    whole,
)
from marketdata_assets.quality.slice_checks import (
    BINANCE_DUMP_CHECKS,
    CRYPTO_CHECKS,
    CRYPTO_SNAPSHOT_CHECKS,
    OPTION_CHAIN_CHECKS,
    STOCK_FEED_CHECKS,
    rule_check,
    rule_verdicts,
    trade_id_check,
)
from marketdata_assets.quality.slices import (
    FUNDING_INSIDE_CAP,
    PRICES_POSITIVE,
    TICKER_NOT_CROSSED,
    UNIT_STEP_REVERTS,
    funding_caps,
)
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.stores.clickhouse import writer
from tests.test_definitions import TICKS_CHECKS

DAY = date(2025, 1, 15)
NOON = datetime(2025, 1, 15, 12, tzinfo=UTC)


def trades(instrument: str, prices: list[float], venue: str = "BINANCE") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [NOON + timedelta(seconds=i) for i in range(len(prices))],
            "venue": venue,
            "instrument": instrument,
            "trade_id": [str(i + 1) for i in range(len(prices))],
            "price": prices,
            "quantity": 1.0,
            "amount": prices,
            "side": "buy",
            "seq": [i + 1 for i in range(len(prices))],
        },
    ).pipe(as_schema, TRADES_SCHEMA)


def write(store, dataset: str, frame: pl.DataFrame, venue: str, instrument: str, day: date = DAY) -> None:
    with store.get_client() as client:
        writer.write_slice(client, store.database, dataset, frame, venue, instrument, day, "test")


def run(store, check: Check, partitions: list[str]) -> dict:
    with store.get_client() as client:
        return check.run(ClickHouse(client, store.database), partitions)


def test_a_range_gets_one_verdict_per_partition_with_a_full_precision_sample(store):
    write(store, "trades", trades("BTCUSDT", [95_000.5, -0.00004321, 0.0]), "BINANCE", "BTCUSDT")
    write(store, "trades", trades("ETHUSDT", [3_300.25, 0.001455]), "BINANCE", "ETHUSDT")
    keys = [f"{DAY}|BINANCE:BTCUSDT", f"{DAY}|BINANCE:ETHUSDT", f"{DAY - timedelta(days=1)}|BINANCE:BTCUSDT"]
    check = rule_check("crypto_trades", PRICES_POSITIVE["trades"])
    assert (check.name, check.asset, check.store, check.partitioned_by) == (
        "prices_positive",
        "crypto_trades",
        CLICKHOUSE,
        DAY_INSTRUMENT,
    )
    found = run(store, check, keys)
    assert list(found) == keys
    bad, good, empty = found.values()
    assert (bad.passed, bad.severity, bad.description) == (
        False,
        ERROR,
        PRICES_POSITIVE["trades"].description,
    )
    assert list(bad.metadata) == ["violations", "rows_checked", "checked", "rule", "sample"]
    assert (bad.metadata["violations"], bad.metadata["rows_checked"], bad.metadata["checked"]) == (
        2,
        3,
        keys[0],
    )
    assert isinstance(bad.metadata["sample"], Markdown) and "| -0.00004321 |" in bad.metadata["sample"]
    assert good.passed and "sample" not in good.metadata and good.metadata["rows_checked"] == 2
    assert empty.passed and (empty.metadata["violations"], empty.metadata["rows_checked"]) == (0, 0)


def test_a_warn_rule_keeps_its_severity_and_a_provisional_day_warns():
    rule = UNIT_STEP_REVERTS["bars_1m"]
    verdicts = rule_verdicts(
        rule,
        {},
        ["2027-01-04", "2027-01-05"],
        provisional={"2027-01-05": "exchange-calendars 4.x knows XSHG until 2026-12-31"},
    )
    assert verdicts["2027-01-04"] == Verdict(
        True,
        rule.description,
        {"violations": 0, "rows_checked": 0, "checked": "2027-01-04", "rule": rule.description},
        WARN,
    )
    late = verdicts["2027-01-05"]
    assert (late.passed, late.severity, late.metadata["calendar"]) == (
        False,
        WARN,
        "exchange-calendars 4.x knows XSHG until 2026-12-31",
    )
    assert late.description == f"exchange-calendars 4.x knows XSHG until 2026-12-31. {rule.description}"


def test_a_snapshot_check_names_the_latest_day_it_looked_at(store):
    crossed = columns_of("tickers")
    crossed.add(
        int(NOON.timestamp()) * 1_000_000,
        95_000.0,
        95_001.0,
        1.0,
        95_000.5,
        1.0,
        10.0,
        9.5e5,
        None,
        None,
        None,
    )
    write(store, "tickers", crossed.frame("OKX", "BTC-USDT"), "OKX", "BTC-USDT")
    (verdict,) = run(
        store, rule_check("crypto_tickers", TICKER_NOT_CROSSED, INSTRUMENT), ["OKX:BTC-USDT"]
    ).values()
    assert not verdict.passed and verdict.metadata["violations"] == 1
    assert verdict.metadata["checked"].startswith("OKX:BTC-USDT (its latest day, ")


def test_continuity_says_what_it_did_not_check(store):
    write(
        store, "trades", trades("BTCUSDT", [95_000.0, 95_001.0]), "BINANCE", "BTCUSDT"
    )  # no ingest_log source
    check = trade_id_check("crypto_trades")
    found = run(store, check, [f"{DAY}|BINANCE:BTCUSDT", f"{DAY}|BINANCE:ETHUSDT"])
    loaded, absent = found.values()
    assert (
        loaded.passed
        and "not checked" in loaded.description
        and loaded.metadata["checked"] == f"{DAY}|BINANCE:BTCUSDT"
    )
    assert isinstance(loaded.metadata["holes"], Markdown)
    assert absent == Verdict(
        True, f"{DAY}|BINANCE:ETHUSDT: no active load", {"checked": f"{DAY}|BINANCE:ETHUSDT"}
    )


def test_a_judge_must_answer_every_partition_and_match_the_partitioning():
    silent = Check(
        "silent", "crypto_trades", "answers nothing", CLICKHOUSE, lambda store, keys: {}, DAY_INSTRUMENT
    )
    with pytest.raises(ValueError, match="judged no verdict for"):
        silent.run(None, [f"{DAY}|BINANCE:BTCUSDT"])
    with pytest.raises(ValueError, match="partitioned by"):
        silent.run(None)
    unpartitioned = Check(
        "once", "stock_monthly_kline", "one verdict", CLICKHOUSE, whole(lambda store: Verdict(True))
    )
    assert unpartitioned.run(None) == {None: Verdict(True)}


def test_the_funding_cap_is_the_configs_unless_the_scope_names_others():
    caps = load_sources_config().funding_caps
    assert (
        FUNDING_INSIDE_CAP.params()
        == funding_caps(caps)
        == {"cap_venues": list(caps), "caps": list(caps.values())}
    )


def test_slices_of_partition_keys():
    assert slices_of([f"{DAY}|BINANCE_UM:BTCUSDT", f"{DAY}|OKX:BTC-USDT"], "funding") == [
        SliceKey("funding", "BINANCE_UM", "BTCUSDT", DAY),
        SliceKey("funding", "OKX", "BTC-USDT", DAY),
    ]


def test_the_declarations_cover_every_ticks_asset_with_its_checks():
    from marketdata_assets.defs.live.checks import LIVE_DATASET_CHECKS, LIVE_TRADE_CHECKS
    from marketdata_assets.quality.reach import CRYPTO_REACH_CHECKS

    declared: dict[str, set[str]] = {}
    for check in (
        CRYPTO_CHECKS
        + CRYPTO_SNAPSHOT_CHECKS
        + OPTION_CHAIN_CHECKS
        + BINANCE_DUMP_CHECKS
        + STOCK_FEED_CHECKS["TUSHARE"]
        + STOCK_FEED_CHECKS["YAHOO"]
        + LIVE_TRADE_CHECKS
        + LIVE_DATASET_CHECKS
        + CRYPTO_REACH_CHECKS
    ):
        assert check.name not in declared.get(check.asset, set()), (
            f"{check.asset} declares {check.name} twice"
        )
        declared.setdefault(check.asset, set()).add(check.name)
    continuity = {"crypto_trades", "binance_dump_trades", "live_trades"}
    assert declared == {
        asset: names
        | ({"trade_ids_continuous"} if asset in continuity else set())
        | ({"live_matches_hourly"} if asset == "live_trades" else set())
        for asset, names in TICKS_CHECKS.items()
    }
