"""ingest.factors on the embedded ClickHouse: every factor against a Polars recomputation of the frames
written, NULL where an input has no rows, only the active load counted, the registry's "one entry" promise,
one query returning only the values."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets import frames
from marketdata_assets.ingest import factors as fx
from marketdata_assets.stores.clickhouse import writer as w

DAY = date(2025, 1, 15)
START = datetime(2025, 1, 15, tzinfo=UTC)
VENUE = "OKX"
PERP, SPOT = "BTC-USDT-SWAP", "BTC-USDT"
NAMES = [f.name for f in fx.FACTORS]


def make_trades(instrument: str, n: int, seed: int, day: date = DAY) -> pl.DataFrame:
    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    us = sorted(rng.randrange(86_400_000_000) for _ in range(n))
    us[1] = us[0]  # ties at the first and last ts: seq decides (not the id, not row order)
    us[-2] = us[-1]
    ids = [str(990 + i) for i in range(n)]
    seq = [5000 + i for i in range(n)]
    seq[0], seq[1], seq[-2], seq[-1] = seq[1], seq[0], seq[-1], seq[-2]
    price = [round(100 + 20 * rng.random(), 2) for _ in range(n)]
    qty = [round(0.001 + rng.random(), 6) for _ in range(n)]
    return pl.DataFrame(
        {
            "ts": [start + timedelta(microseconds=u) for u in us],
            "venue": VENUE,
            "instrument": instrument,
            "trade_id": ids,
            "price": price,
            "quantity": qty,
            "amount": [p * q for p, q in zip(price, qty)],
            "side": ["buy" if rng.random() < 0.6 else "sell" for _ in range(n)],
            "seq": seq,
        },
    ).pipe(frames.as_schema, frames.TRADES_SCHEMA)


def make_bars(instrument: str, seed: int, minutes: int = 300) -> pl.DataFrame:
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(1440), minutes))  # gaps: a return spans the bars next to each other
    close = [100 * math.exp(rng.gauss(0, 0.01)) for _ in picked]
    return pl.DataFrame(
        {
            "ts": [START + timedelta(minutes=m) for m in picked],
            "venue": VENUE,
            "instrument": instrument,
            "open": close,
            "high": [c * 1.001 for c in close],
            "low": [c * 0.999 for c in close],
            "close": close,
            "volume": 1.0,
            "amount": close,
            "trades": 1,
        },
        schema=frames.BARS_SCHEMA,
    )


def make_books(instrument: str, seed: int, snapshots: int = 6) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for s in range(snapshots):
        ts = START + timedelta(hours=3 * s, microseconds=rng.randrange(1000))
        mid = 100 + rng.random()
        for level in range(3):
            for side, sign in (("bid", -1), ("ask", 1)):
                if s == snapshots - 1 and side == "ask":
                    continue  # a one-sided snapshot: no spread, left out
                size = (3 + rng.random()) if side == "bid" else (1 + rng.random())
                price = mid + sign * (0.01 + 0.02 * rng.random()) * (level + 1)
                rows.append((ts, VENUE, instrument, side, level, price, size, s))
    return pl.DataFrame(rows, schema=frames.BOOKS_SCHEMA, orient="row")


def make_funding(instrument: str, day: date = DAY) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = [
        (start + timedelta(hours=h), VENUE, instrument, rate, interval, rate * 8 / interval, None, None)
        for h, rate, interval in (
            (0, 0.0001, 8.0),
            (8, 0.00025, 8.0),
            (12, 0.00004, 4.0),
            (16, -0.00005, 4.0),
        )
    ]
    return pl.DataFrame(rows, schema=frames.FUNDING_SCHEMA, orient="row")


def make_price_bars(instrument: str, minutes: range, level: float) -> pl.DataFrame:
    close = [level * (1 + 0.001 * math.sin(m)) for m in minutes]
    return pl.DataFrame(
        {
            "ts": [START + timedelta(minutes=m) for m in minutes],
            "venue": VENUE,
            "instrument": instrument,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
        },
        schema=frames.PRICE_BARS_SCHEMA,
    )


def expected(data: dict) -> dict:
    """Every factor of the frames, recomputed in Polars (None where the input has no rows)."""
    out = {name: None for name in NAMES}
    trades = data.get("trades")
    if trades is not None and trades.height:
        t = trades.sort("ts", "seq")
        buy = t.filter(pl.col("side") == "buy")["quantity"].sum()
        sell = t.filter(pl.col("side") == "sell")["quantity"].sum()
        out.update(
            {
                "return": t["price"][-1] / t["price"][0] - 1,
                "vwap": (t["price"] * t["quantity"]).sum() / t["quantity"].sum(),
                "volume": t["quantity"].sum(),
                "notional": t["amount"].sum(),
                "trade_count": float(t.height),
                "buy_sell_imbalance": (buy - sell) / (buy + sell),
            }
        )
    bars = data.get("bars_1m")
    if bars is not None and bars.height > 1:
        r = bars.sort("ts").select((pl.col("close") / pl.col("close").shift(1)).log())["close"].drop_nulls()
        out["realized_vol"] = math.sqrt((r * r).sum())
    books = data.get("books")
    if books is not None and books.height:
        top = books.filter(pl.col("level") == 0).pivot("side", index="ts", values=["price", "quantity"])
        top = top.drop_nulls()  # one-sided snapshots
        bid, ask = top["price_bid"], top["price_ask"]
        bid_size, ask_size = top["quantity_bid"], top["quantity_ask"]
        out["avg_spread_bps"] = ((ask - bid) / ((ask + bid) / 2) * 1e4).mean()
        out["depth_imbalance"] = ((bid_size - ask_size) / (bid_size + ask_size)).mean()
    funding = data.get("funding")
    if funding is not None and funding.height:
        out["funding_annualized"] = (funding["rate"] / funding["interval_hours"] * 24 * 365).mean()
    mark, index = data.get("mark_bars_1m"), data.get("index_bars_1m")
    if mark is not None and index is not None:
        both = mark.join(index, on="ts", suffix="_i")
        if both.height:
            out["basis_annualized"] = (both["close"] / both["close_i"] - 1).mean() * 3 * 365
    return out


def perp_data(seed: int = 1) -> dict:
    return {
        "trades": make_trades(PERP, 400, seed),
        "bars_1m": make_bars(PERP, seed),
        "books": make_books(PERP, seed),
        "funding": make_funding(PERP),
        "mark_bars_1m": make_price_bars(PERP, range(600), 100.05),
        "index_bars_1m": make_price_bars(PERP, range(30, 700, 2), 100.0),
    }  # some minutes of both: a join


def spot_data(seed: int = 2) -> dict:
    return {
        "trades": make_trades(SPOT, 250, seed),
        "bars_1m": make_bars(SPOT, seed, 200),
        "books": make_books(SPOT, seed),
    }


def write(client, db, instrument: str, data: dict, run: str = "r1") -> None:
    for dataset, frame in data.items():
        w.write_slice(client, db, dataset, frame, VENUE, instrument, DAY, run)


def as_dict(frame: pl.DataFrame, instrument: str) -> dict:
    rows = frame.filter(pl.col("instrument") == instrument)
    return dict(zip(rows["factor"].to_list(), rows["value"].to_list()))


def assert_factors(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, value in want.items():
        if value is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(value, rel=1e-9), name


@pytest.fixture
def ch(store):
    with store.get_client() as client:
        yield client, store.database


class Spy:
    """A client whose queries are recorded (sql, parameters, rows returned)."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def query(self, sql, parameters=None, **kwargs):
        result = self.client.query(sql, parameters=parameters, **kwargs)
        self.calls.append((sql, parameters, len(result.result_rows)))
        return result


def test_every_factor_matches_polars_and_spot_has_nulls(ch):
    client, db = ch
    perp, spot = perp_data(), spot_data()
    write(client, db, PERP, perp)
    write(client, db, SPOT, spot)
    # the neighbouring days must not count
    w.write_slice(
        client,
        db,
        "trades",
        make_trades(PERP, 50, 9, DAY + timedelta(days=1)),
        VENUE,
        PERP,
        DAY + timedelta(days=1),
        "r1",
    )
    w.write_slice(
        client,
        db,
        "funding",
        make_funding(PERP, DAY - timedelta(days=1)),
        VENUE,
        PERP,
        DAY - timedelta(days=1),
        "r1",
    )

    got = fx.compute_factors(client, db, VENUE, PERP, DAY)
    assert got.schema == pl.Schema(frames.FACTORS_SCHEMA)
    assert got["ts"].to_list() == [START] * len(NAMES) and got["factor"].to_list() == NAMES
    want = expected(perp)
    assert all(v is not None for v in want.values())
    assert_factors(as_dict(got, PERP), want)

    spot_got = as_dict(fx.compute_factors(client, db, VENUE, SPOT, DAY), SPOT)
    assert_factors(spot_got, expected(spot))
    assert spot_got["funding_annualized"] is None and spot_got["basis_annualized"] is None
    assert spot_got["trade_count"] == 250.0

    # an instrument with nothing stored: every factor NULL, no error
    assert fx.compute_factors(client, db, VENUE, "ETH-USDT", DAY)["value"].null_count() == len(NAMES)
    # the frame the factors dataset is written as
    w.write_slice(client, db, "factors", got, VENUE, PERP, DAY, "r1")


def test_many_instruments_in_one_query_equal_one_by_one(ch):
    client, db = ch
    write(client, db, PERP, perp_data())
    write(client, db, SPOT, spot_data())
    many = fx.compute_factors_many(client, db, VENUE, [SPOT, PERP, "ETH-USDT"], DAY)
    one = pl.concat([fx.compute_factors(client, db, VENUE, i, DAY) for i in (SPOT, PERP, "ETH-USDT")])
    assert many.equals(one)
    assert fx.compute_factors_many(client, db, VENUE, [], DAY).height == 0
    assert fx.compute_factors(client, db, VENUE, PERP, DAY, factors=()).height == 0


def test_only_the_active_load_counts(ch):
    client, db = ch
    old, new = perp_data(seed=1), perp_data(seed=5)
    new.update(
        funding=make_funding(PERP).with_columns(pl.col("rate") * 3),
        trades=make_trades(PERP, 300, 5),
        mark_bars_1m=make_price_bars(PERP, range(500), 100.08),
    )
    write(client, db, PERP, old, "r1")
    before = as_dict(fx.compute_factors(client, db, VENUE, PERP, DAY), PERP)
    assert_factors(before, expected(old))
    write(client, db, PERP, new, "r2")  # the same slices again, other rows
    after = as_dict(fx.compute_factors(client, db, VENUE, PERP, DAY), PERP)
    assert_factors(after, expected(new))
    assert all(before[n] != after[n] for n in NAMES)
    # an emptied slice: its factors become NULL
    w.write_slice(client, db, "funding", pl.DataFrame(schema=frames.FUNDING_SCHEMA), VENUE, PERP, DAY, "r3")
    assert as_dict(fx.compute_factors(client, db, VENUE, PERP, DAY), PERP)["funding_annualized"] is None


def test_a_new_factor_is_one_entry(ch):
    client, db = ch
    data = perp_data()
    write(client, db, PERP, data)
    extra = fx.Factor(
        "max_drawdown_price",
        "highest minus lowest trade price over the highest",
        "trades",
        "(max(price) - min(price)) / max(price)",
        "ratio",
    )
    registry = (*fx.FACTORS, extra)
    got = as_dict(fx.compute_factors(client, db, VENUE, PERP, DAY, factors=registry), PERP)
    t = data["trades"]["price"]
    assert got["max_drawdown_price"] == pytest.approx((t.max() - t.min()) / t.max(), rel=1e-9)
    assert_factors({n: got[n] for n in NAMES}, expected(data))
    # and a new input: a named SELECT over another dataset (funding's rate_8h here)
    inputs = {**fx.INPUTS, "funding_8h": fx.Input("funding_8h", "SELECT instrument, rate_8h FROM {funding}")}
    last = fx.Factor("funding_8h_sum", "sum of the 8-hour rates", "funding_8h", "sum(rate_8h)", "ratio")
    got = as_dict(fx.compute_factors(client, db, VENUE, PERP, DAY, factors=(last,), inputs=inputs), PERP)
    assert got == {"funding_8h_sum": pytest.approx(data["funding"]["rate_8h"].sum(), rel=1e-9)}


def test_one_query_and_only_the_values_come_back(ch):
    client, db = ch
    write(client, db, PERP, perp_data())
    spy = Spy(client)
    got = fx.compute_factors(spy, db, VENUE, PERP, DAY)
    assert got.height == len(NAMES)
    [(sql, params, rows)] = spy.calls
    assert rows == len(NAMES)
    assert set(params) == {"venue", "instrument", "start", "end"} and PERP not in sql and VENUE not in sql
    assert sql.count("GROUP BY instrument") >= len(fx.INPUTS)
    assert sql == fx.factors_sql(db)


def test_user_data_is_never_sql_text(ch):
    client, db = ch
    write(client, db, SPOT, spot_data())
    hostile = "X' OR 1=1 --"
    assert fx.compute_factors(client, db, VENUE, hostile, DAY)["value"].null_count() == len(NAMES)
    with pytest.raises(ValueError, match="ClickHouse database"):
        fx.compute_factors(client, "db`; DROP TABLE x", VENUE, SPOT, DAY)
    bad = dataclasses.replace(fx.FACTORS[0], name="bad name'")
    with pytest.raises(ValueError, match="factor name"):
        fx.factors_sql(db, (bad,))
    with pytest.raises(ValueError, match="unknown input"):
        fx.factors_sql(db, (dataclasses.replace(fx.FACTORS[0], input="nope"),))
    with pytest.raises(ValueError, match="placeholders"):
        fx.factors_sql(db, fx.FACTORS, {**fx.INPUTS, "trades": fx.Input("trades", "SELECT * FROM {nope}")})


def test_registry_is_complete():
    assert len(set(NAMES)) == len(NAMES) >= 11
    assert {f.input for f in fx.FACTORS} == set(fx.INPUTS)
    assert all(f.description and f.unit for f in fx.FACTORS)
    assert all(set(i.datasets) <= set(frames.DATASETS) for i in fx.INPUTS.values())
