"""The crypto replays' reference and 24 h ticker endpoints against the venues' documented examples
(tests/fixtures/reference/, README there), their errors and limits, and the lifecycle events."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig, reference, volumes
from marketdata_assets.replay.crypto.config import BINANCE, BINANCE_UM, DEFAULT_INSTRUMENTS, DERIBIT, OKX
from marketdata_assets.replay.crypto.deribit import contract_size
from marketdata_assets.replay.crypto.tape import instrument_spec
from marketdata_assets.sources.venues import venue_client

FIXTURES = Path(__file__).parents[2] / "fixtures" / "reference"
NOW = "2026-11-25T12:00:00Z"
NOW_US = int(datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp() * 1_000_000)
TAKEN = datetime(2026, 11, 25, 12, 10, tzinfo=UTC)
LIFE = reference.lifecycle(NOW_US)


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def get(server, target: str) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(server.base_url + target) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def same_shape(documented: dict, served: dict, *, typo: dict | None = None) -> None:
    """Every documented field is served, with the documented JSON type (ints and floats alike)."""
    for key, value in documented.items():
        key = (typo or {}).get(key, key)
        assert key in served, key
        kinds = (int, float) if type(value) in (int, float) else type(value)
        assert isinstance(served[key], kinds), (key, served[key])


@pytest.fixture(scope="module")
def replay():
    config = LIFE.enable(ReplayConfig(now=NOW, trades_per_day=40))
    with CryptoReplayServer(config) as server:
        yield server


def test_universe_is_realistic_and_holds_the_configured_sizes():
    """(How fast it is built is `bench universe --resolve`'s to measure: a timed assertion here failed on a
    busy machine, 0.82 s against 0.5.)"""
    reference._universe.cache_clear()
    universe = reference.universe(0, NOW_US)
    live = {venue: universe.live(venue, NOW_US) for venue in (BINANCE, BINANCE_UM, OKX, DERIBIT)}
    assert 1300 <= len(live[BINANCE]) <= 1700 and 400 <= len(live[BINANCE_UM]) <= 600
    kinds = {k: sum(i.kind == k for i in live[OKX]) for k in ("spot", "perpetual", "future", "option")}
    assert (
        600 <= kinds["spot"] <= 800
        and 200 <= kinds["perpetual"] <= 300
        and kinds["future"]
        and kinds["option"]
    )
    assert {i.quote for i in live[BINANCE]} == {"USDT", "FDUSD", "BTC"}
    swaps = [i.terms for i in live[OKX] if i.kind == "perpetual"]
    assert {0.01, 0.1, 1.0, 10.0, 100.0} <= {t.ct_val for t in swaps} and any(t.ct_mult == 10 for t in swaps)
    assert {t.size_unit for t in swaps} == {"contracts", "inverse_contracts"}
    for venue, names in DEFAULT_INSTRUMENTS.items():
        for name in names:
            found = universe.get(venue, name)
            assert found is not None and found.live(NOW_US), name
            spec = instrument_spec(venue, name)
            assert (found.terms.tick, found.terms.step) == (spec.tick, spec.size_step)
    assert (
        universe.get(OKX, "BTC-USDT-SWAP").terms.ct_val
        == 0.01
        == instrument_spec(OKX, "BTC-USDT-SWAP").ct_val
    )
    assert universe.get(OKX, "ETH-USDT-SWAP").terms.ct_val == 0.1
    sizes = {n: universe.get(DERIBIT, n).terms.ct_val for n in DEFAULT_INSTRUMENTS[DERIBIT]}
    assert sizes == {"BTC-PERPETUAL": 10.0, "ETH-PERPETUAL": 1.0, "BTC_USDC-PERPETUAL": 0.001}
    assert all(contract_size(n) == size for n, size in sizes.items())


def test_binance_exchange_info(replay):
    status, body, headers = get(replay, "/api/v3/exchangeInfo")
    documented = fixture("binance_spot_exchange_info.json")
    assert status == 200 and int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20
    same_shape({k: v for k, v in documented.items() if k != "sors"}, body)
    for symbol in body["symbols"][:50]:
        same_shape(documented["symbols"][0], symbol)
        filters = {f["filterType"]: f for f in symbol["filters"]}
        assert {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"} <= set(filters)
        assert float(filters["PRICE_FILTER"]["tickSize"]) > 0 and float(filters["LOT_SIZE"]["stepSize"]) > 0
    names = {s["symbol"] for s in body["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", LIFE.event("listed", BINANCE).instrument} <= names
    assert LIFE.event("delisted").instrument not in names
    assert {s["status"] for s in body["symbols"]} == {"TRADING", "BREAK"}
    assert get(replay, "/api/v3/exchangeInfo?symbol=OLDCOINUSDT")[1] == {
        "code": -1121,
        "msg": "Invalid symbol.",
    }
    two = get(replay, '/api/v3/exchangeInfo?symbols=["BTCUSDT","ETHBTC"]'.replace('"', "%22"))[1]
    assert [s["symbol"] for s in two["symbols"]] == ["BTCUSDT", "ETHBTC"]
    assert get(replay, "/api/v3/exchangeInfo?symbol=BTCUSDT&symbols=%5B%22BTCUSDT%22%5D")[1]["code"] == -1128
    assert get(replay, "/api/v3/exchangeInfo?symbols=BTCUSDT")[1]["code"] == -1100


def test_binance_exchange_info_weighs_20():
    with CryptoReplayServer(ReplayConfig(now=NOW, binance_weight_limit=45)) as server:
        weights = [
            get(server, "/api/v3/exchangeInfo?symbol=BTCUSDT")[2].get("X-MBX-USED-WEIGHT-1M")
            for _ in range(3)
        ]
        status, body, headers = get(server, "/api/v3/exchangeInfo?symbol=BTCUSDT")
    assert weights[:2] == ["20", "40"] and weights[2] == "60"
    assert status == 429 and body["code"] == -1003 and "Retry-After" in headers


def test_binance_um_exchange_info(replay):
    status, body, headers = get(replay, "/fapi/v1/exchangeInfo")
    documented = fixture("binance_um_exchange_info.json")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] and body["rateLimits"][0]["limit"] == 2400
    same_shape(documented, body)
    for symbol in body["symbols"]:
        same_shape(documented["symbols"][0], symbol, typo={"OrderType": "orderTypes"})  # the docs' spelling
    kinds = {s["contractType"] for s in body["symbols"]}
    assert kinds == {"PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER"}
    quarterly = [s for s in body["symbols"] if s["contractType"] != "PERPETUAL"]
    assert all(
        s["deliveryDate"] > NOW_US // 1000 and s["symbol"].startswith(s["pair"] + "_") for s in quarterly
    )
    new = next(s for s in body["symbols"] if s["symbol"] == LIFE.event("listed", BINANCE_UM).instrument)
    assert new["onboardDate"] == LIFE.event("listed", BINANCE_UM).at_us // 1000


def test_okx_instruments(replay):
    status, body, _ = get(replay, "/api/v5/public/instruments?instType=SPOT")
    assert status == 200 and body["code"] == "0" and body["msg"] == ""
    documented = fixture("okx_instruments.json")["data"][0]
    typed = {"instIdCode": int, "futureSettlement": bool, "tradeQuoteCcyList": list, "upcChg": list}
    for inst_type in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION&instFamily=BTC-USD"):
        data = get(replay, f"/api/v5/public/instruments?instType={inst_type}")[1]["data"]
        example = fixture(f"okx_instruments_{inst_type.split('&')[0].lower()}_nautilus_trader.json")["data"][
            0
        ]
        assert data and all(r["instType"] == inst_type.split("&")[0] for r in data)
        for record in data[:100]:
            same_shape(documented, record)
            same_shape(example, record)
            assert all(isinstance(v, typed.get(k, str)) for k, v in record.items()), record
    swaps = {r["instId"]: r for r in get(replay, "/api/v5/public/instruments?instType=SWAP")[1]["data"]}
    assert swaps["BTC-USDT-SWAP"]["ctVal"] == "0.01" and swaps["BTC-USDT-SWAP"]["ctType"] == "linear"
    assert swaps["BTC-USD-SWAP"]["ctVal"] == "100" and swaps["BTC-USD-SWAP"]["ctValCcy"] == "USD"
    assert swaps[LIFE.event("ct_val_changed").instrument]["ctVal"] == "10"  # the value valid now
    futures = get(replay, "/api/v5/public/instruments?instType=FUTURES")[1]["data"]
    assert LIFE.event("expired", OKX).instrument not in {r["instId"] for r in futures}
    assert {r["ctType"] for r in futures} == {"linear", "inverse"} and all(r["expTime"] for r in futures)
    options = get(replay, "/api/v5/public/instruments?instType=OPTION&uly=ETH-USD")[1]["data"]
    assert {(r["ctVal"], r["ctMult"], r["uly"]) for r in options} == {("0.1", "1", "ETH-USD")}
    assert {r["optType"] for r in options} == {"C", "P"} and all(float(r["stk"]) > 0 for r in options)
    one = get(replay, "/api/v5/public/instruments?instType=SWAP&instId=ETH-USDT-SWAP")[1]["data"]
    assert [r["ctVal"] for r in one] == ["0.1"]
    assert get(replay, "/api/v5/public/instruments?instType=OPTION")[1]["code"] == "50015"
    assert get(replay, "/api/v5/public/instruments")[1]["code"] == "50014"
    assert get(replay, "/api/v5/public/instruments?instType=BOND")[1]["code"] == "51000"


def test_okx_instruments_share_the_per_path_limit():
    with CryptoReplayServer(ReplayConfig(now=NOW, okx_requests_per_2s=2)) as server:
        answers = [
            get(server, "/api/v5/public/instruments?instType=SWAP&instId=BTC-USDT-SWAP") for _ in range(3)
        ]
        assert server.state()["limit_refusals"][OKX] == 1
    assert [a[0] for a in answers] == [200, 200, 429] and answers[2][1]["code"] == "50011"


def test_deribit_instruments(replay):
    status, body, _ = get(replay, "/api/v2/public/get_instruments?currency=BTC&kind=future")
    assert status == 200 and body["jsonrpc"] == "2.0"
    documented = fixture("deribit_get_instruments.json")["result"]
    for record in body["result"]:
        same_shape(documented[0], record)
    by_name = {r["instrument_name"]: r for r in body["result"]}
    assert (
        by_name["BTC-PERPETUAL"]["contract_size"] == 10
        and by_name["BTC-PERPETUAL"]["instrument_type"] == "reversed"
    )
    assert by_name["BTC-PERPETUAL"]["settlement_period"] == "perpetual"
    example = next(
        r for r in fixture("deribit_get_instruments_nautilus_trader.json")["result"] if r["kind"] == "option"
    )
    options = get(replay, "/api/v2/public/get_instruments?currency=ETH&kind=option")[1]["result"]
    for record in options:
        same_shape(example, record)
    assert {r["option_type"] for r in options} == {"call", "put"} and {
        r["contract_size"] for r in options
    } == {1}
    linear = get(replay, "/api/v2/public/get_instrument?instrument_name=BTC_USDC-PERPETUAL")[1]["result"]
    assert linear["contract_size"] == 0.001 and linear["instrument_type"] == "linear"
    usdc = {
        r["instrument_name"] for r in get(replay, "/api/v2/public/get_instruments?currency=USDC")[1]["result"]
    }
    assert LIFE.event("listed", DERIBIT).instrument in usdc
    expired = get(replay, "/api/v2/public/get_instruments?currency=BTC&expired=true")[1]["result"]
    assert {r["instrument_name"] for r in expired} == {e.instrument for e in LIFE.of("expired", DERIBIT)}
    assert not any(r["is_active"] for r in expired)
    unknown = get(replay, "/api/v2/public/get_instrument?instrument_name=BTC-1JAN20")
    assert unknown[0] == 400 and unknown[1]["error"]["code"] == -32602
    assert get(replay, "/api/v2/public/get_instruments")[1]["error"]["data"]["param"] == "currency"
    assert (
        get(replay, "/api/v2/public/get_instruments?currency=BTC&kind=bond")[1]["error"]["data"]["param"]
        == "kind"
    )


def test_deribit_get_instruments_has_its_own_rate():
    with CryptoReplayServer(ReplayConfig(now=NOW, deribit_instruments_per_s=1)) as server:
        first = get(server, "/api/v2/public/get_instruments?currency=ETH&kind=future")
        second = get(server, "/api/v2/public/get_instruments?currency=ETH&kind=future")
        other = get(server, "/api/v2/public/get_instrument?instrument_name=ETH-PERPETUAL")
    assert first[0] == 200 and second[0] == 429 and second[1]["error"]["code"] == 10028 and other[0] == 200


def volumes_of(server, venue: str) -> dict[str, Volume]:
    """What the venue's client reads of the replay's 24 h tickers (one snapshot)."""

    async def go():
        async with venue_client(venue, server.base_url, requests_per_minute=60_000) as api:
            return await api.volumes(TAKEN)

    return {v.instrument: v for v in asyncio.run(go())}


def test_the_replays_serve_every_instruments_24h_ticker_as_documented(replay):
    universe = reference.universe(replay.config.seed, NOW_US)
    documented = {
        "/api/v3/ticker/24hr": fixture("binance_spot_ticker_24hr.json")[0],
        "/api/v3/ticker/24hr?type=MINI": fixture("binance_spot_ticker_24hr_mini.json")[0],
        "/fapi/v1/ticker/24hr": fixture("binance_um_ticker_24hr.json")[0],
        "/api/v5/market/tickers?instType=SWAP": fixture("okx_tickers.json")["data"][0],
        "/api/v2/public/get_book_summary_by_currency?currency=BTC&kind=future": fixture(
            "deribit_get_book_summary_by_currency.json"
        )["result"][1],
    }
    only = {
        "mark_iv",
        "funding_8h",
        "current_funding",
    }  # the docs' future has a mark_iv; perpetuals only: funding
    used = {}
    for target, example in documented.items():
        status, body, used[target] = get(replay, target)
        records = body if isinstance(body, list) else body.get("data") or body["result"]
        assert status == 200 and records, target
        for record in records[:100]:
            same_shape(
                {k: 0 if v is None else v for k, v in example.items() if k not in only}, record
            )  # null: a number
            assert set(record) <= set(example) | {"volume_notional"}, target  # documented fields only
    for target, weight in (("/api/v3/ticker/24hr?type=MINI", 80), ("/fapi/v1/ticker/24hr", 40)):  # no symbol
        first, then = (
            int(headers["X-MBX-USED-WEIGHT-1M"]) for headers in (used[target], get(replay, target)[2])
        )
        assert then - first == weight or then == weight  # (or a new minute began between them)
    for venue in (BINANCE, BINANCE_UM, OKX):
        read = volumes_of(replay, venue)
        assert set(read) == {i.name for i in universe.live(venue, NOW_US)}, venue
        dollars = [v.quote_volume for v in read.values() if v.unit in ("USDT", "USD")]
        assert (
            len(set(dollars)) == len(dollars) and max(dollars) > 1e4 * min(dollars) > 0
        )  # they differ, widely
        top = sorted(read.values(), key=lambda v: -v.quote_volume)[:3]
        assert all(v.unit in ("USDT", "USD", "USDC") for v in top) and any(
            v.instrument.startswith("BTC") for v in top
        )
    deribit = volumes_of(replay, DERIBIT)
    assert {i.name for i in universe.live(DERIBIT, NOW_US) if i.kind != "option"} <= set(deribit)
    assert {v.unit for v in deribit.values()} == {"USD"} and deribit["BTC-PERPETUAL"].quote_volume > 1e6
    options = volumes_of(replay, OKX)
    assert {v.unit for name, v in options.items() if name.endswith(("-C", "-P"))} == {"USD"}  # x BTC-USD-SWAP
    later = [volumes.usd_volume(0, i, NOW_US + 86_400_000_000) for i in universe.live(BINANCE, NOW_US)[:200]]
    today = [volumes.usd_volume(0, i, NOW_US) for i in universe.live(BINANCE, NOW_US)[:200]]
    assert sorted(range(200), key=today.__getitem__) != sorted(range(200), key=later.__getitem__)  # a new day


def test_a_listing_in_the_history(replay):
    listed = LIFE.event("listed", BINANCE)
    before, after = listed.at_us // 1000 - 3_600_000, listed.at_us // 1000
    name = listed.instrument
    assert get(replay, f"/api/v3/aggTrades?symbol={name}&startTime={before}&endTime={after - 1}")[1] == []
    assert (
        get(replay, f"/api/v3/klines?symbol={name}&interval=1m&startTime={before - 86_400_000}&limit=1000")[1]
        == []
    )
    day_after = get(replay, f"/api/v3/aggTrades?symbol={name}&startTime={after}&endTime={after + 3_600_000}")[
        1
    ]
    later = replay.truth_trades(BINANCE, name, date(2026, 11, 22))
    assert later.height == 40 and later["ts"].min() >= datetime(2026, 11, 22, 8, tzinfo=UTC)
    assert all(t["T"] >= after for t in day_after)
    assert replay.truth_trades(BINANCE, name, date(2026, 11, 21)).height == 0
    deribit = LIFE.event("listed", DERIBIT).instrument
    chart = get(
        replay,
        f"/api/v2/public/get_tradingview_chart_data?instrument_name={deribit}&resolution=1"
        f"&start_timestamp={before - 86_400_000}&end_timestamp={after - 1}",
    )[1]["result"]
    assert chart["status"] == "no_data"
    okx = get(
        replay,
        f"/api/v5/market/history-candles?instId={LIFE.event('listed', OKX).instrument}"
        f"&after={after - 60_000}",
    )[1]
    assert okx["code"] == "0" and okx["data"] == []


def test_a_delisting_and_expiries(replay):
    delisted = LIFE.event("delisted")
    assert get(replay, f"/api/v3/aggTrades?symbol={delisted.instrument}")[1]["code"] == -1121
    day = reference.to_date(delisted.at_us)
    trades = replay.truth_trades(BINANCE, delisted.instrument, day)
    assert trades.height == 40 and trades["ts"].max() < datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    assert replay.truth_trades(BINANCE, delisted.instrument, day - timedelta(days=1)).height == 40
    okx_future = LIFE.event("expired", OKX).instrument
    assert get(replay, f"/api/v5/market/history-trades?instId={okx_future}")[1]["code"] == "51001"
    future = LIFE.event("expired", DERIBIT)
    served = get(
        replay, f"/api/v2/public/get_last_trades_by_instrument?instrument_name={future.instrument}&count=100"
    )[1]["result"]["trades"]
    assert served and max(t["timestamp"] for t in served) < future.at_us // 1000
    with CryptoReplayServer(
        ReplayConfig(
            now="2026-11-22T12:00:00Z", trades_per_day=40, instruments={BINANCE: [delisted.instrument]}
        )
    ) as earlier:
        assert (
            len(get(earlier, f"/api/v3/aggTrades?symbol={delisted.instrument}")[1]) > 0
        )  # still listed then


def test_a_contract_value_change_sizes_trades_and_open_interest(replay):
    change = LIFE.event("ct_val_changed")
    name, before_day = change.instrument, reference.to_date(change.at_us) - timedelta(days=1)
    okx = replay.venues[OKX]
    for day, value in ((before_day, change.before), (reference.to_date(change.at_us), change.after)):
        tape = replay.market.tape(OKX, name, day)
        assert tape.spec.ct_val == value
        truth = replay.truth_trades(OKX, name, day)
        assert truth["quantity"].to_list() == pytest.approx([s * value for s in tape.size])
    oi_before = okx.open_interest_row(name, change.at_us - 3_600_000_000)
    oi_after = okx.open_interest_row(name, change.at_us + 3_600_000_000)
    assert oi_before[1] == pytest.approx(oi_before[0] * change.before)
    assert oi_after[1] == pytest.approx(oi_after[0] * change.after)
    assert oi_after[1] == pytest.approx(oi_before[1], rel=0.6)  # the same exposure in other contracts


def test_the_archive_lists_the_delisted_symbol_until_its_delisting_day():
    config = ArchiveReplayConfig(seed=3, trades_per_day=20, published_until=date(2026, 11, 24))
    delisted = LIFE.event("delisted")
    with BinanceArchiveReplayServer(config) as server:

        def listing(prefix: str) -> str:
            with urllib.request.urlopen(f"{server.base_url}/?delimiter=/&prefix={prefix}") as reply:
                return reply.read().decode()

        symbols = listing("data/spot/daily/trades/")
        assert "<IsTruncated>true</IsTruncated>" in symbols and "<NextMarker>" in symbols
        olds = listing("data/spot/daily/trades/OLD")
        assert f"<Prefix>data/spot/daily/trades/{delisted.instrument}/</Prefix>" in olds
        files = listing(f"data/spot/daily/trades/{delisted.instrument}/")
        last = reference.to_date(delisted.at_us)
        keys = [k.split("</Key>")[0] for k in files.split("<Key>")[1:]]
        assert keys[-1].endswith(f"{delisted.instrument}-trades-{last.isoformat()}.zip.CHECKSUM")
        assert "<Size>" in files and "<ETag>" in files
        path = f"/data/spot/daily/trades/{delisted.instrument}/{delisted.instrument}-trades-"
        assert server.serve_path(f"{path}{last.isoformat()}.zip").status == 200
        assert server.serve_path(f"{path}{(last + timedelta(days=1)).isoformat()}.zip").status == 404
        truth = server.truth(f"{path}{last.isoformat()}.zip")
        assert truth.height and truth["ts"].max() < datetime(last.year, last.month, last.day, 3, tzinfo=UTC)
