"""Coverage against the universe of each day (read/expected.py): a day is expected when it is on or after
history_start, a trading day, over, and the instrument is in its venue's universe that day; a missing
expected day is named with its reason and the command that loads it (the REST reach a reason, not an
exemption). The store end to end: a backfill of 1 of 30 days is 1/30 in `ticks_coverage` and
`marketdata status`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.datasets.universe import UniverseRule, resolve
from marketdata_assets.read import expected as ex
from marketdata_assets.sources.config import load_sources_config
from tests.datasets.test_instruments import T0, swap

PAIRS = ["BTCUSDT", "ETHUSDT"]
START = T0.date()  # a Friday
TODAY = START + timedelta(days=6)


def universes() -> ex.Universes:
    swap_ = swap(listed=T0 + timedelta(days=2))  # BTC-USDT-SWAP: listed on the third day
    eth = swap("ETH-USDT-SWAP", 0.1, base="ETH", listed=T0 + timedelta(days=1))  # never in the rule
    master = Master(changes({}, [swap_, eth], T0))
    master.add(changes(master.current(), [swap_._replace(status="suspended"), eth], T0 + timedelta(days=4)))
    rules = {
        "OKX": UniverseRule("OKX", types=("perpetual",), bases=("BTC",), statuses=("live",)),
        "SSE": UniverseRule("SSE", explicit=("600000.SH",)),
    }
    return ex.Universes(master, rules, {"OKX": START, "SSE": START}, {"AAPL": START})


def test_a_day_is_expected_from_history_start_on_the_days_listed_in_the_universe_and_trading():
    u, swap_ = universes(), "BTC-USDT-SWAP"
    day = [START + timedelta(days=i) for i in range(7)]
    assert u.why_not("OKX", swap_, START - timedelta(days=1), TODAY) == ex.BEFORE_START
    assert [u.why_not("OKX", swap_, d, TODAY) for d in day] == [ex.NOT_LISTED] * 2 + [None] * 2 + [
        ex.NOT_IN_UNIVERSE  # suspended: listed, but the rule takes only live ones
    ] * 2 + [ex.CLOSED]
    assert u.why_not("SSE", "600000.SH", day[1], TODAY) == ex.CLOSED  # a Saturday
    assert u.days("OKX", swap_, date.min, TODAY, TODAY) == day[2:4]  # today is not over
    assert u.days("SSE", "600000.SH", date.min, TODAY, TODAY) == [day[0], day[3], day[4], day[5]]
    assert u.members("OKX", date.min, TODAY, TODAY) == {swap_}
    # resolved once per stretch between the master's changes: the same as resolving every day
    for d in day[:-1]:
        assert (swap_ in resolve(u.master, u.rules["OKX"], d)) == (d in u.days("OKX", swap_, d, d, TODAY))
    # an instrument no universe ever names is not judged by one (the caller: from its first stored day);
    # Yahoo's symbols have no venue in the sources file: any exchange, on its trading days
    assert u.covers("OKX", swap_) and not u.covers("OKX", "ETH-USDT-SWAP")
    assert u.why_not("OKX", "ETH-USDT-SWAP", day[3], TODAY) is None
    assert u.covers("NMS", "AAPL") and not u.covers("NMS", "MSFT") and not u.covers("BINANCE", "BTCUSDT")
    assert u.days("NMS", "AAPL", date.min, TODAY, TODAY) == [day[0], day[3], day[4], day[5]]


def test_a_missing_day_says_why_and_names_the_command_that_loads_it():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    archives = replace(load_sources_config().binance_archives, instruments=("BTCUSDT",))
    old, late, recent = date(2024, 12, 30), date(2026, 11, 20), date(2026, 11, 27)
    got = ex.why_missing("trades", "BINANCE_UM", "BTCUSDT", [recent, late, old], archives, now)
    assert got == [
        ([recent], "not loaded: marketdata backfill crypto --start-date 2026-11-27 --end-date 2026-11-27"),
        (
            [late],
            (
                "past the REST reach of BINANCE_UM (48 hours): load from the archive: "
                "marketdata backfill archives --start-date 2026-11-20 --end-date 2026-11-20"
            ),
        ),
        (
            [old],
            (
                "past the REST reach of BINANCE_UM (48 hours): data.binance.vision archives (market um): "
                "individual trades into `trades`, aggregate trades into `agg_trades` "
                "(binance_archives start on 2025-01-01 in the sources file)"
            ),
        ),
    ]
    (_, eth), *_ = [g for g in ex.why_missing("trades", "BINANCE_UM", "ETHUSDT", [late], archives, now)]
    assert eth.endswith(
        "(BINANCE_UM:ETHUSDT is not among the instruments of binance_archives in the sources file)"
    )
    assert ex.why_missing("trades", "OKX", "BTC-USDT", [date(2026, 1, 5)], archives, now) == [
        ([date(2026, 1, 5)], "past the REST reach of OKX (90 days): nowhere in this project")
    ]
    days = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 5)]
    (group,) = ex.why_missing("bars_1m", "SSE", "600000.SH", days, archives, now)
    assert ex.missing_text([group]) == (
        "3 days 2026-11-02..2026-11-05 not loaded: marketdata backfill a_shares --start-date 2026-11-02 "
        "--end-date 2026-11-05"
    )


def test_a_backfill_of_1_of_30_days_shows_1_of_30_and_status_names_the_29_missing_days(
    store, tmp_path, monkeypatch
):
    """The issue's case through the store: the universe's instruments from a history_start 30 days back,
    one day loaded (yesterday, from the crypto replay): `ticks_coverage` shows 1/30 for each (not 100%),
    and `marketdata status` counts the 29 others and names them with their reason and command."""
    import dagster as dg
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli
    from marketdata_assets.core import calendars
    from marketdata_assets.defs.upkeep.coverage import ticks_coverage
    from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
    from tests.read.conftest import ingest
    from tests.support.universes import use_universes

    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=29)
    use_universes(tmp_path, monkeypatch, first, {"BINANCE": PAIRS}, ["600000.SH"])
    with CryptoReplayServer(ReplayConfig(seed=3, trades_per_day=50)) as server:
        ingest(store, server.base_url, "BINANCE", "bars_1m", PAIRS, day=last)

    result = dg.materialize([ticks_coverage], resources={"clickhouse": store})
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    table = meta["by_instrument"].value
    span = f"29 days {first}..{last - timedelta(days=1)}"
    command = f"marketdata backfill crypto --start-date {first} --end-date {last - timedelta(days=1)}"
    for pair in PAIRS:
        assert f"| BINANCE:{pair} | 1/30 | 3.33 | {span} not loaded: " in table
        assert command in table
    sessions = len(calendars.trading_days("SSE", first, last))
    assert f"| SSE:600000.SH | 0/{sessions} | 0.00 | {sessions} days " in table  # expected, nothing stored
    assert meta["missing_days"].value == 2 * 29 + sessions and meta["overall_percent"].value == 2.22
    (check,) = result.get_asset_check_evaluations()  # the completeness check says it too, as a warning
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert (
        check.description
        == f"{2 * 29 + sessions:,} expected instrument-day(s) of 3 instrument(s) have no bars"
    )
    assert f"| BINANCE:{PAIRS[0]} | 29 | {span} not loaded: {command} |" in check.metadata["missing"].value

    monkeypatch.setenv("CLICKHOUSE_DSN", store.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", store.database)
    out = CliRunner().invoke(cli, ["status", "--dataset", "bars_1m", "--venue", "BINANCE"])
    assert out.exit_code == 0, out.output
    assert [line.split()[:7] for line in out.stdout.splitlines()[1:]] == [
        ["bars_1m", "BINANCE", pair, str(last), str(last), "1", "29"] for pair in PAIRS
    ]
    for pair in PAIRS:
        assert f"missing bars_1m BINANCE:{pair}: {span} not loaded: {command}\n" in (out.stderr)
    # the other datasets the venue's REST serves for them: expected too, nothing stored (rows of their own)
    trades = CliRunner().invoke(cli, ["status", "--dataset", "trades", "--venue", "BINANCE"])
    assert [line.split()[:4] for line in trades.stdout.splitlines()[1:]] == [
        ["trades", "BINANCE", pair, "0"] for pair in PAIRS
    ]
