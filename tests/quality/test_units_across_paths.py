"""The same trades of every kind of instrument the collector takes (Binance spot and USD-M, OKX spot and a
linear swap in contracts, Deribit's inverse and linear perpetuals), in the venues' documented frame
shapes, pushed through the live path (the venue's decode -> JetStream message -> the consumer's
`trade_row` -> `trades_live`) and the hourly path (landing file -> the loader's `read_day` -> the
`trades` slice), against the venue's REST parser of the same trades: identical rows in `trades_live`,
`trades` and `trades_latest`, and `live_matches_hourly` passes; a live row in contracts (the old
defect) fails it, and a trade only the hourly load holds is a WARN. One ClickHouse database."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest

from marketdata_assets.ingest.live.hourly.load import read_day
from marketdata_assets.quality.checks import ClickHouse
from marketdata_assets.quality.live_paths import LIVE_MATCHES_HOURLY_CHECK, judge
from marketdata_assets.sources.binance.rest import parse_agg_trades, parse_trades
from marketdata_assets.sources.deribit.rest import parse_trade_page
from marketdata_assets.sources.okx.rest import parse_history_trades
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.stores.clickhouse import live
from marketdata_assets.stores.clickhouse.writer import write_slice
from marketdata_assets.stores.landing import LandingWriter
from tests.support.reference import ReferenceServer, documented, known

DAY = date(2026, 11, 20)
MS = int(datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC).timestamp() * 1000)
COLUMNS = "ts, trade_id, price, quantity, amount, side"
# (price, size as the venue counts it, buyer is maker / side) of three trades
TRADES = [("42219.9", "0.12060306", True), ("42220.1", "3", False), ("0.0000255", "1000", True)]


def binance_spot() -> tuple[list[str], list]:
    """`trade` events (binance-spot-api-docs web-socket-streams.md), combined-stream wrapped; REST
    historicalTrades."""
    frames, rest = [], []
    for k, (p, q, maker) in enumerate(TRADES):
        data = {
            "e": "trade",
            "E": MS + k + 3,
            "s": "BTCUSDT",
            "t": 12345 + k,
            "p": p,
            "q": q,
            "T": MS + k,
            "m": maker,
            "M": True,
        }
        frames.append(json.dumps({"stream": "btcusdt@trade", "data": data}))
        rest.append(
            {
                "id": 12345 + k,
                "price": p,
                "qty": q,
                "quoteQty": repr(float(p) * float(q)),
                "time": MS + k,
                "isBuyerMaker": maker,
                "isBestMatch": True,
            }
        )
    return frames, parse_trades(rest, "BTCUSDT").rows()


def binance_um() -> tuple[list[str], list]:
    """`aggTrade` events (USD-M "Aggregate Trade Streams"); REST /fapi/v1/aggTrades."""
    frames, rest = [], []
    for k, (p, q, maker) in enumerate(TRADES):
        record = {"a": 5933014 + k, "p": p, "q": q, "f": 100 + k, "l": 100 + k, "T": MS + k, "m": maker}
        frames.append(
            json.dumps(
                {
                    "stream": "btcusdt@aggTrade",
                    "data": {"e": "aggTrade", "E": MS + k + 2, "s": "BTCUSDT", **record},
                }
            )
        )
        rest.append(record)
    return frames, parse_agg_trades(rest, "BTCUSDT", venue="BINANCE_UM").rows()


def okx(instrument: str) -> tuple[list[str], list]:
    """One `trades` push of three (OKX v5 "Trades channel"); REST history-trades."""
    data = [
        {
            "instId": instrument,
            "tradeId": str(130639474 + k),
            "px": p,
            "sz": q,
            "side": "sell" if maker else "buy",
            "ts": str(MS + k),
            "count": "1",
            "source": "0",
            "seqId": 1234 + k,
        }
        for k, (p, q, maker) in enumerate(TRADES)
    ]
    push = {"arg": {"channel": "trades", "instId": instrument}, "data": data}
    reference = (
        known("OKX", instrument) if instrument.endswith("-SWAP") else None
    )  # the venue's ctVal x ctMult
    return [json.dumps(push)], parse_history_trades(
        {"code": "0", "msg": "", "data": data}, instrument, reference=reference
    ).rows()


def deribit(instrument: str) -> tuple[list[str], list]:
    """One `trades.<instrument>.100ms` notification (docs.deribit.com, JSON numbers); REST trades page.
    Inverse BTC-PERPETUAL: `amount` in USD (multiples of 10); linear: in BTC."""
    data = [
        {
            "trade_seq": 30289442 + k,
            "trade_id": str(48079269 + k),
            "timestamp": MS + k,
            "tick_direction": 2,
            "price": float(p),
            "mark_price": 8948.9,
            "instrument_name": instrument,
            "index_price": 8955.88,
            "direction": "sell" if maker else "buy",
            "amount": 10.0 * (k + 1) if "_" not in instrument else float(q),
        }
        for k, (p, q, maker) in enumerate(TRADES)
    ]
    note = {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": f"trades.{instrument}.100ms", "data": data},
    }
    body = {"jsonrpc": "2.0", "result": {"trades": data, "has_more": False}}
    return [json.dumps(note)], parse_trade_page(body, instrument)[0].rows()


CASES = {
    ("BINANCE", "BTCUSDT"): binance_spot,
    ("BINANCE_UM", "BTCUSDT"): binance_um,
    ("OKX", "BTC-USDT"): lambda: okx("BTC-USDT"),
    ("OKX", "BTC-USDT-SWAP"): lambda: okx("BTC-USDT-SWAP"),
    ("DERIBIT", "BTC-PERPETUAL"): lambda: deribit("BTC-PERPETUAL"),
    ("DERIBIT", "BTC_USDC-PERPETUAL"): lambda: deribit("BTC_USDC-PERPETUAL"),
}
HOUR = "2026-11-20-10:00"
KEYS = [f"{HOUR}|{venue}:{instrument}" for venue, instrument in CASES]


def rows_of(client, db: str, table: str, venue: str, instrument: str) -> list[tuple]:
    final = " FINAL" if table == live.TRADES_LIVE else ""
    return client.query(
        f"SELECT {COLUMNS} FROM `{db}`.`{table}`{final} WHERE venue = {{v:String}} AND "
        "instrument = {i:String} ORDER BY trade_id",
        parameters={"v": venue, "i": instrument},
    ).result_rows


def expected(rest_rows: list) -> list[tuple]:
    """The REST parser's rows (ts, venue, instrument, trade_id, price, quantity, amount, side, seq) as
    selected."""
    return sorted(
        (
            (ts.replace(tzinfo=None), tid, price, qty, amount, side)
            for ts, _, _, tid, price, qty, amount, side, *_ in rest_rows
        ),
        key=lambda r: r[1],
    )


def same(got: list[tuple], want: list[tuple]) -> bool:
    """Equal rows; numbers to 1e-12 (Binance spot's REST amount is the venue's quoteQty, the stream's price x
    qty)."""
    return len(got) == len(want) and all(
        g[:2] == w[:2]
        and g[5] == w[5]
        and all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(g[2:5], w[2:5]))
        for g, w in zip(got, want)
    )


@pytest.fixture
def okx_reference(monkeypatch):
    """OKX's REST base, where the hourly loads look contract values up, at the documented reference data."""
    with ReferenceServer() as server:
        monkeypatch.setenv("OKX_BASE_URL", server.url)
        yield server


def test_the_same_trades_are_the_same_rows_on_every_path_and_the_check_says_so(
    clickhouse, tmp_path, okx_reference
):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        live.ensure_live_tables(client, db)
        store = ClickHouse(client, db)
        for (venue, instrument), case in CASES.items():
            frames, rest_rows = case()
            protocol, landing = documented(stream_protocol(venue, "all")), LandingWriter(tmp_path, venue)
            messages = []
            for k, text in enumerate(frames):
                recv_ns = (MS + 50 + k) * 1_000_000
                messages += protocol.messages(protocol.decode(text), recv_ns)
                landing.frame(
                    protocol.trade_channel_format.format(
                        instrument.lower() if protocol.lower_channels else instrument
                    ),
                    "c1",
                    text,
                    recv_ns,
                )
            landing.close()
            live.insert_live_trades(client, db, [row for m in messages for row in live.trade_rows(m.payload)])
            live_rows = rows_of(client, db, live.TRADES_LIVE, venue, instrument)
            assert same(live_rows, expected(rest_rows)), (venue, instrument, live_rows)
            assert (
                rows_of(client, db, live.TRADES_LATEST, venue, instrument) == live_rows
            )  # nothing loaded yet
            write_slice(
                client,
                db,
                "trades",
                read_day(tmp_path, instrument, DAY, venue=venue),
                venue,
                instrument,
                DAY,
                "hourly",
            )
            assert rows_of(client, db, "trades_v", venue, instrument) == live_rows, (venue, instrument)
            assert (
                rows_of(client, db, live.TRADES_LATEST, venue, instrument) == live_rows
            )  # now the batch rows
        swap = rows_of(client, db, live.TRADES_LIVE, "OKX", "BTC-USDT-SWAP")
        assert [r[3] for r in swap] == [0.12060306 * 0.01, 3 * 0.01, 1000 * 0.01]  # contracts x ctVal: BTC
        inverse = rows_of(client, db, live.TRADES_LIVE, "DERIBIT", "BTC-PERPETUAL")
        assert [(r[3], r[4]) for r in inverse] == [
            (10 / 42219.9, 10.0),
            (20 / 42220.1, 20.0),
            (30 / 0.0000255, 30.0),
        ]
        verdicts = judge(store, KEYS)  # each (hour, instrument)
        assert all(v.passed for v in verdicts.values()), {k: v.description for k, v in verdicts.items()}
        assert verdicts[KEYS[3]].metadata["live_quantity"] == verdicts[KEYS[3]].metadata["hourly_quantity"]
        (hour,) = LIVE_MATCHES_HOURLY_CHECK.run(
            store, [HOUR]
        ).values()  # the hour partition: its instruments'
        assert hour.passed and hour.metadata["instruments"] == len(KEYS), hour.description

        # the old defect: a live row of the swap in contracts, not BTC
        ts, tid, price, _, amount, side = swap[0]
        client.insert(
            live.TRADES_LIVE,
            [(ts, "OKX", "BTC-USDT-SWAP", tid, price, 0.12060306, amount, side)],
            column_names=["ts", "venue", "instrument", "trade_id", "price", "quantity", "amount", "side"],
            database=db,
        )
        client.command(
            f"DELETE FROM `{db}`.{live.TRADES_LIVE} WHERE instrument = 'BTC-PERPETUAL' AND trade_id = "
            "'48079270'"
        )
        verdicts = judge(store, KEYS)
        (hour,) = LIVE_MATCHES_HOURLY_CHECK.run(store, [HOUR]).values()
        # a live trade after the last loaded one: pending while the hour lands (a restart loaded a
        # segment early), lost once it has ended
        spot = rows_of(client, db, live.TRADES_LIVE, "BINANCE", "BTCUSDT")[-1]
        client.insert(
            live.TRADES_LIVE,
            [(spot[0] + timedelta(minutes=5), "BINANCE", "BTCUSDT", "99", *spot[2:])],
            column_names=["ts", "venue", "instrument", "trade_id", "price", "quantity", "amount", "side"],
            database=db,
        )
        landing = judge(store, KEYS[:1], now=datetime(2026, 11, 20, 10, 30, tzinfo=UTC))[KEYS[0]]
        ended = judge(store, KEYS[:1], now=datetime(2026, 11, 20, 11, 0, tzinfo=UTC))[KEYS[0]]
    assert landing.passed and landing.metadata["pending"] == 1 and "still landing" in landing.description
    assert not ended.passed and ended.severity == "ERROR" and ended.metadata["only_live"] == 1
    wrong, missing = verdicts[KEYS[3]], verdicts[KEYS[4]]
    assert not wrong.passed and wrong.severity == "ERROR" and wrong.metadata["differing"] == 1, (
        wrong.description
    )
    assert not missing.passed and missing.severity == "WARN" and missing.metadata["only_hourly"] == 1
    assert sum(v.passed for v in verdicts.values()) == len(KEYS) - 2
    assert not hour.passed and hour.severity == "ERROR" and hour.metadata["instruments_failed"] == 2
    assert "| OKX:BTC-USDT-SWAP | FAILED |" in str(hour.metadata["by_instrument"])
