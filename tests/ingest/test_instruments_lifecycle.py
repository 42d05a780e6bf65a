"""The instrument master over the replays' lifecycle (replay/crypto/reference.py LIFECYCLE): a listing in the
middle of the history, a delisting, an expiry and an OKX contract-value change. A day before a listing has
no slice; a delisted instrument's days load; the change splits the master's versions and each day is
sized by the value valid that day; `marketdata universe --as-of` shows each case, and a top N by the
volume snapshot each refresh took (a day before the first: a look-ahead, said); tickers that fail leave
the listing stored, and say so."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from click.testing import CliRunner

from marketdata_assets.core.http import SourceNotFound
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import Instrument, changes
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.datasets.universe import UniverseRule, resolve
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.ingest.instruments import (
    ClickHouseMaster,
    instrument_service,
    refresh_venues,
    stored_master,
)
from marketdata_assets.read import Reader
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.reference import LIFECYCLE, lifecycle, to_date
from marketdata_assets.sources.binance_vision.archives import (
    ArchiveClient,
    ArchiveKey,
    fetch_verified,
    read_archive,
)
from marketdata_assets.sources.binance_vision.listing import LIMITS as LISTING_LIMITS
from marketdata_assets.sources.config import CONFIG_ENV, DEFAULT_CONFIG
from marketdata_assets.sources.venues import venue_client
from marketdata_assets.stores.clickhouse.instruments import store_versions

NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)
TODAY = NOW.date()
DAY = timedelta(days=1)
XRP = LIFECYCLE.ct_change_instrument


@pytest.fixture(scope="module")
def replay():
    config = ReplayConfig(seed=3, trades_per_day=300, now=NOW.isoformat())
    lifecycle(int(NOW.timestamp() * 1e6)).enable(config)
    with CryptoReplayServer(config) as server:
        yield server


def makers(url: str) -> dict:
    return {
        venue: (lambda venue=venue: venue_client(venue, url, requests_per_minute=60_000))
        for venue in ("BINANCE", "OKX", "DERIBIT")
    }


def listing(url: str, venue: str) -> list:
    async def go():
        async with venue_client(venue, url, requests_per_minute=60_000) as api:
            return await api.listing()

    return asyncio.run(go())


def trades(url: str, service: InstrumentService, venue: str, instrument: str, day):
    async def go():
        async with venue_client(venue, url, service, requests_per_minute=60_000) as api:
            start = datetime.combine(day, datetime.min.time(), UTC)
            return await api.trades(instrument, start, start + DAY)

    return asyncio.run(go())


def archived_trades(workdir, instrument: str, day):
    """The day's trades of `instrument` from the data.binance.vision replay (its listing names the same
    universe), downloaded, verified and read as the archive loads read them."""
    config = ArchiveReplayConfig(trades_per_day=50, published_until=TODAY - DAY, reference_seed=3)
    key = ArchiveKey.of_slice(SliceKey("trades", "BINANCE", instrument, day))

    async def go(url: str):
        async with ArchiveClient(url) as api:
            return await fetch_verified(api, key, workdir)

    with BinanceArchiveReplayServer(config) as server:
        verified = asyncio.run(go(server.base_url))
    return read_archive(verified.path, key, keep=[day])[0]


def test_a_master_kept_daily_has_every_case(replay, clickhouse, monkeypatch, tmp_path):
    events = lifecycle(int(NOW.timestamp() * 1e6))
    change = events.event("ct_val_changed")
    changed_at = datetime.fromtimestamp(change.at_us / 1e6, UTC)
    delisted = events.event("delisted")
    url = replay.base_url
    with clickhouse.get_client() as client:
        # what a refresh the day before the change stored: XRP at its old value
        okx_then = [
            i._replace(contract_value=change.before) if i.instrument == XRP else i
            for i in listing(url, "OKX")
        ]
        stored_master(client, clickhouse.database)  # the table made
        store_versions(client, clickhouse.database, changes({}, okx_then, changed_at - DAY))
        # the refresh that ran at the change, and today's (the archive site lists the delisted symbol)
        refresh_venues(client, clickhouse.database, makers(url), now=changed_at)
        with BinanceArchiveReplayServer(
            ArchiveReplayConfig(trades_per_day=20, published_until=TODAY - DAY, reference_seed=3)
        ) as archive:
            firsts = {i.name: to_date(i.listed_us) for i in archive.universe().ever("BINANCE", 1 << 62)}
            done, failed = refresh_venues(
                client,
                clickhouse.database,
                makers(url),
                now=NOW,
                archive=lambda: ArchiveClient(archive.base_url, **LISTING_LIMITS),
            )
        assert not failed and {r.venue for r in done} == {"BINANCE", "OKX", "DERIBIT"}
        assert sum(r.listed for r in done) > 2_000  # a realistic universe
        assert all(r.volumes > 0.9 * r.listed for r in done if r.venue != "DERIBIT")  # a volume snapshot each
        service = instrument_service(ClickHouseMaster.of(client, clickhouse.database))
        master = service.master

    history = master.history("OKX", XRP)
    assert [(v.valid_from, v.instrument.contract_value) for v in history][-2:] == [
        (history[-2].valid_from, change.before),
        (changed_at, change.after),
    ]  # two versions, nothing overwritten
    for day, value in ((changed_at.date() - DAY, change.before), (changed_at.date() + DAY, change.after)):
        got = trades(url, service, "OKX", XRP, day)
        truth = replay.truth_trades("OKX", XRP, day)
        assert got.height == truth.height > 0
        assert got["quantity"].to_list() == pytest.approx(
            truth["quantity"].to_list()
        )  # sized as the venue did
        assert master.at("OKX", XRP, datetime.combine(day, datetime.min.time(), UTC)).size == value

    listed = events.event("listed", "OKX")
    listed_day = datetime.fromtimestamp(listed.at_us / 1e6, UTC).date()
    rule = UniverseRule("OKX", types=("spot",), bases=("NEWCOIN",))
    assert resolve(master, rule, listed_day - DAY) == [] and resolve(master, rule, listed_day) == [
        listed.instrument
    ]
    keys = slice_keys(
        [f"{listed_day - DAY}|OKX", f"{listed_day}|OKX"],
        ["trades"],
        universe=lambda venue, day: resolve(master, rule, day),
    )
    assert [(k.instrument, k.day) for k in keys] == [
        (listed.instrument, listed_day)
    ]  # no slice before the listing

    gone = UniverseRule("BINANCE", types=("spot",), bases=("OLDCOIN",))
    delisted_day = datetime.fromtimestamp(delisted.at_us / 1e6, UTC).date()
    assert resolve(master, gone, delisted_day - DAY) == [delisted.instrument]  # its days stay in history
    assert resolve(master, gone, delisted_day + DAY) == []  # not after its last archived day
    old = master.at("BINANCE", delisted.instrument)
    assert (old.status, old.expires.date()) == (
        "delisted",
        delisted_day + DAY,
    )  # learned from the archive listing
    with pytest.raises(SourceNotFound, match="-1121"):  # Binance's REST forgets a delisted symbol ...
        trades(url, service, "BINANCE", delisted.instrument, delisted_day - DAY)
    archived = archived_trades(
        tmp_path, delisted.instrument, delisted_day - DAY
    )  # ... its archive keeps its days
    assert archived.height > 0 and set(archived["instrument"]) == {delisted.instrument}

    expired = events.event("expired", "DERIBIT")
    assert master.at("DERIBIT", expired.instrument).status == "expired"  # get_instruments expired=true

    monkeypatch.setenv("CLICKHOUSE_DSN", clickhouse.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", clickhouse.database)
    from marketdata_assets.apps.cli import cli

    # what existed when: every spot symbol dated by its first archived day (exchangeInfo gives none)
    early = date(2019, 6, 1)
    by_then = sorted(name for name, first in firsts.items() if first <= early)
    assert 0 < len(by_then) < len(firsts) / 2
    assert [i.instrument for i in master.listed_on("BINANCE", early)] == by_then
    assert master.listed_on("BINANCE", date(2012, 1, 1)) == []  # years before the venue opened
    with Reader() as reader:
        then = reader.instruments("BINANCE", as_of=early)
    assert then["instrument"].to_list() == by_then and not then["look_ahead"].any()
    for day, listed in ((early, len(by_then)), (date(2012, 1, 1), 0)):
        shown = CliRunner().invoke(cli, ["universe", "--venue", "BINANCE", "--as-of", str(day)])
        assert shown.exit_code == 0 and "look-ahead" not in shown.output, shown.output
        assert f"BINANCE {day}: " in shown.output and f" of {listed:,} listed that day; " in shown.output
    assert "explicit: 0, 3 not listed that day (BTCUSDT, ETHUSDT, SOLUSDT)" in shown.output  # none in 2012
    sse = CliRunner().invoke(cli, ["universe", "--venue", "SSE", "--as-of", str(early)]).output
    assert sse == (
        f"SSE {early}: 8 in the universe; no rule (0 listed that day); explicit: 8; joined 0; left 0\n"
    )
    future, today = CliRunner().invoke(cli, ["universe", "--as-of", "2999-01-01"]), datetime.now(UTC).date()
    assert future.exit_code == 2 and (
        f"Invalid value for --as-of: 2999-01-01 has not happened yet (today is {today} UTC): no "
        "listing of it is known"
    ) in " ".join(future.output.split())

    shown = CliRunner().invoke(
        cli, ["universe", "--venue", "OKX", "--as-of", str(changed_at.date() - DAY), "--list"]
    )
    assert shown.exit_code == 0, shown.output
    assert "BTC-USDT-SWAP  rule+explicit  perpetual  0.01 BTC  live" in shown.output

    # a top N ranks by the snapshot each refresh took: a day before the first is said to look ahead
    sources = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    sources["universes"]["crypto"]["rules"]["OKX"] = {"types": ["perpetual"], "settles": ["USDT"], "top": 3}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "sources.yaml"))
    early, today = (
        CliRunner().invoke(cli, ["universe", "--venue", "OKX", "--as-of", str(day)]).output
        for day in (changed_at.date() - DAY, TODAY)
    )
    assert (
        f"top 3 by 24 h volume as of {changed_at:%Y-%m-%d %H:%M} UTC — after the day: look-ahead: 3 of "
        in early
    )
    assert (
        f"top 3 by 24 h volume as of {NOW:%Y-%m-%d %H:%M} UTC: 3 of " in today and "look-ahead" not in today
    )


class TickersDown:
    """A venue whose listing answers and whose 24 h tickers do not (a mirror that serves only the
    reference)."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def listing(self):
        return [
            Instrument(
                "OKX",
                "BTC-USDT",
                "spot",
                "BTC",
                "USDT",
                "USDT",
                False,
                1.0,
                1.0,
                "BTC",
                0.1,
                1e-8,
                1e-5,
                NOW - 30 * DAY,
                None,
                "live",
            )
        ]

    async def volumes(self, taken):
        raise SourceNotFound("OKX", "tickers", 404, None, "unknown path /api/v5/market/tickers")


def test_tickers_that_fail_are_said_and_the_listing_is_stored_all_the_same(clickhouse):
    with clickhouse.get_client() as client:
        done, failed = refresh_venues(client, clickhouse.database, {"OKX": TickersDown}, now=NOW)
        assert [(r.venue, r.listed, r.volumes) for r in done] == [("OKX", 1, 0)]
        assert (
            failed["OKX"].startswith("its 24 h volumes: SourceNotFound")
            and "versions are stored" in failed["OKX"]
        )
        assert stored_master(client, clickhouse.database).at("OKX", "BTC-USDT").tick_size == 0.1


def test_what_a_collector_looked_up_reaches_the_stored_master_once_and_waits_while_the_store_is_away(
    clickhouse, monkeypatch
):
    """`apps.universes.keep_looked_up` (the live process, each minute and at its stop): the versions a
    collector's master learned from the venue are stored once; with the store away they are kept, said, and
    stored later."""
    from marketdata_assets.apps.universes import keep_looked_up, process_instruments

    swap = Instrument(
        "OKX",
        "UNI-USD-SWAP",
        "perpetual",
        "UNI",
        "USD",
        "UNI",
        True,
        10.0,
        1.0,
        "USD",
        0.001,
        1.0,
        1.0,
        NOW - 300 * DAY,
        None,
        "live",
    )
    monkeypatch.setenv("CLICKHOUSE_DSN", "http://127.0.0.1:9")  # nothing listens there
    service = process_instruments()
    service.master.learn("OKX", ["UNI-USD-SWAP"], [swap])  # what a lookup of a frame's unknown one answered
    said = []
    assert keep_looked_up(service, said.append) == 0 and len(service.learned) == 1
    assert "1 looked-up version(s) kept for the next try" in said[0]
    monkeypatch.setenv("CLICKHOUSE_DSN", clickhouse.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", clickhouse.database)
    assert (
        keep_looked_up(service, said.append) == 1 and service.learned == []
    )  # the table made, on a fresh store
    assert keep_looked_up(service, said.append) == 0  # stored once
    with clickhouse.get_client() as client:
        stored = stored_master(client, clickhouse.database, {"OKX"})
    assert stored.at("OKX", "UNI-USD-SWAP").size == 10.0


class BinanceUndated(TickersDown):
    """A Binance spot listing as exchangeInfo gives it: no listing times."""

    async def listing(self):
        (item,) = await super().listing()
        return [item._replace(venue="BINANCE", instrument=n, listed=None) for n in ("BTCUSDT", "ETHUSDT")]

    async def volumes(self, taken):
        return []


def test_an_archive_site_that_does_not_answer_leaves_the_listing_stored_and_says_what_it_cost(
    clickhouse, monkeypatch
):
    from marketdata_assets.apps.cli import cli
    from marketdata_assets.core.http import RetryPolicy

    monkeypatch.setenv("CLICKHOUSE_DSN", clickhouse.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", clickhouse.database)
    empty = CliRunner().invoke(cli, ["universe", "--venue", "BINANCE"])
    assert "the instrument master is empty: refresh it first (`marketdata instruments`)" in empty.output
    assert "instruments" in cli.commands  # the command the hint names
    dead = lambda: ArchiveClient("http://127.0.0.1:9", retry=RetryPolicy(max_retries=0))
    with clickhouse.get_client() as client:
        done, failed = refresh_venues(client, clickhouse.database, {"BINANCE": BinanceUndated}, NOW, dead)
        master = stored_master(client, clickhouse.database)
    assert [(r.venue, r.listed, len(r.versions)) for r in done] == [("BINANCE", 2, 2)]
    assert failed["BINANCE"].startswith("the archive site's listing: ") and failed["BINANCE"].endswith(
        " (2 listed instruments stored, 2 of them with no listing time (listed: unknown); delisted symbols "
        "not added)"
    )
    assert master.listing("BINANCE", "BTCUSDT") is None
    with Reader() as reader:  # the read says it too
        assert reader.instruments("BINANCE", as_of=TODAY - 400 * DAY)["look_ahead"].to_list() == [True, True]
        assert reader.instruments("BINANCE", as_of=TODAY)["look_ahead"].to_list() == [False, False]
    shown = CliRunner().invoke(cli, ["universe", "--venue", "BINANCE", "--as-of", str(TODAY - 400 * DAY)])
    assert (
        f"  look-ahead: 2 instrument(s) with no listing time, in by the listing first seen {TODAY} (BTCUSDT, "
        "ETHUSDT); refresh the instrument master with the archive site reachable: `marketdata instruments`"
    ) in shown.output
    listed = CliRunner().invoke(cli, ["universe", "--venue", "BINANCE", "--list"])
    assert "  BTCUSDT  rule+explicit  spot  -  live  listed: unknown\n" in listed.output  # today: seen listed


class TushareShares(TickersDown):
    """A Tushare listing (stock_basic): one source, the shares of SSE and SZSE."""

    async def listing(self):
        (item,) = await super().listing()
        share = item._replace(type="equity", quote="CNY", settle="CNY", contract_unit="CNY")
        return [
            share._replace(venue="SSE", instrument="600000.SH"),
            share._replace(venue="SZSE", instrument="000001.SZ"),
        ]

    async def volumes(self, taken):
        return []


def test_a_source_of_several_venues_is_refreshed_against_its_venues_stored_master(clickhouse):
    """TUSHARE lists SSE, SZSE and BSE: a second refresh finds its shares stored, not new again."""
    with clickhouse.get_client() as client:
        first, _ = refresh_venues(client, clickhouse.database, {"TUSHARE": TushareShares}, NOW)
        again, _ = refresh_venues(client, clickhouse.database, {"TUSHARE": TushareShares}, NOW + DAY)
    assert [(r.listed, len(r.new), len(r.versions)) for r in (*first, *again)] == [(2, 2, 2), (2, 0, 0)]
