"""data.binance.vision dump files: names, headerless spot, futures headers, µs rows from 2025, zip,
batches."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.datasets.frames import BARS_SCHEMA, NULLABLE, TRADES_SCHEMA
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.sources.binance_vision.dumps import DumpName, DumpReader, parse_dump_name, read_dump


def ts(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "BTCUSDT-trades-2025-01-15.csv",
            DumpName("BTCUSDT", "trades", date(2025, 1, 15), None, "daily", False),
        ),
        (
            "/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-15.zip",
            DumpName("BTCUSDT", "trades", date(2025, 1, 15), None, "daily", True),
        ),
        (
            "ETHUSDT-aggTrades-2021-03-01.zip",
            DumpName("ETHUSDT", "aggTrades", date(2021, 3, 1), None, "daily", True),
        ),
        ("BTCUSDT-1m-2025-01-15.zip", DumpName("BTCUSDT", "klines", date(2025, 1, 15), "1m", "daily", True)),
        (
            "BTCUSDT-trades-2024-02.zip",
            DumpName("BTCUSDT", "trades", date(2024, 2, 1), None, "monthly", True),
        ),
        (
            "BTCUSD_PERP-trades-2023-06-30.zip",
            DumpName("BTCUSD_PERP", "trades", date(2023, 6, 30), None, "daily", True),
        ),
    ],
)
def test_file_names(name, expected):
    assert parse_dump_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "BTCUSDT-trades-2025-01-15.zip.CHECKSUM",
        "btcusdt-trades-2025-01-15.csv",
        "BTCUSDT-trades-2025-13-01.csv",
        "BTCUSDT-bookDepth-2025-01-15.zip",
    ],
)
def test_bad_file_names(name):
    with pytest.raises(ValueError):
        parse_dump_name(name)


def is_trades_frame(frame: pl.DataFrame) -> bool:
    """The trades contract as the writer takes it: the schema's columns, in order and type; a nullable one
    the dumps do not have may be left out (the writer stores it null)."""
    kept = {c: t for c, t in TRADES_SCHEMA.items() if c in frame.columns or c not in NULLABLE["trades"]}
    return frame.schema == pl.Schema(kept)


def test_headerless_spot_trades_with_microseconds_from_2025(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2025-01-15.csv"
    path.write_text(
        "4433425390,94350.01000000,0.00017000,16.03950170,1736899200008913,True,True\n"
        "4433425391,94350.00000000,0.00500000,471.75000000,1736899200009417,False,True\n"
    )
    frame = read_dump(path)
    assert is_trades_frame(frame)
    assert frame.rows() == [
        (
            ts(2025, 1, 15, 0, 0, 0, 8913),
            "BINANCE",
            "BTCUSDT",
            "4433425390",
            94350.01,
            0.00017,
            16.0395017,
            "sell",
            4433425390,
        ),
        (
            ts(2025, 1, 15, 0, 0, 0, 9417),
            "BINANCE",
            "BTCUSDT",
            "4433425391",
            94350.0,
            0.005,
            471.75,
            "buy",
            4433425391,
        ),
    ]


def test_millisecond_and_microsecond_rows_in_one_file(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2024-12-31.csv"
    path.write_text(
        "1,93000.00000000,0.10000000,9300.00000000,1735689599999,False,True\n"
        "2,93000.00000000,0.10000000,9300.00000000,1735689600000001,True,True\n"
    )
    assert read_dump(path)["ts"].to_list() == [
        ts(2024, 12, 31, 23, 59, 59, 999000),
        ts(2025, 1, 1, 0, 0, 0, 1),
    ]


def test_futures_trades_with_and_without_header_and_lowercase_booleans(tmp_path):
    body = (
        "2943254543,42283.90,0.004,169.13,1704067200066,true\n2943254544,42284.00,0.010,422.84,"
        "1704067200070,false\n"
    )
    with_header = tmp_path / "um" / "BTCUSDT-trades-2024-01-01.csv"
    with_header.parent.mkdir()
    with_header.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n" + body)
    old = tmp_path / "futures" / "um" / "daily" / "BTCUSDT-trades-2024-01-01.csv"  # pre-2022 style: no header
    old.parent.mkdir(parents=True)
    old.write_text(body)
    a, b = read_dump(with_header), read_dump(old)
    assert_frame_equal(a, b)
    assert a.rows() == [
        (
            ts(2024, 1, 1, 0, 0, 0, 66000),
            "BINANCE",
            "BTCUSDT",
            "2943254543",
            42283.9,
            0.004,
            169.13,
            "sell",
            2943254543,
        ),
        (
            ts(2024, 1, 1, 0, 0, 0, 70000),
            "BINANCE",
            "BTCUSDT",
            "2943254544",
            42284.0,
            0.01,
            422.84,
            "buy",
            2943254544,
        ),
    ]


def test_coin_margined_trades_use_base_qty(tmp_path):
    path = tmp_path / "BTCUSD_PERP-trades-2023-06-30.csv"
    path.write_text(
        "id,price,qty,base_qty,time,is_buyer_maker\n531,30450.1,5,0.01642030,1688083200123,false\n"
    )
    row = read_dump(path).row(0, named=True)
    assert (
        row["quantity"] == 0.0164203
        and row["amount"] == pytest.approx(500.0, rel=1e-4)
        and row["side"] == "buy"
    )


def test_agg_trades_spot_and_futures(tmp_path):
    spot = tmp_path / "BTCUSDT-aggTrades-2025-01-15.csv"
    spot.write_text("3371243455,94350.01000000,0.00017000,4433425390,4433425391,1736899200008913,True,True\n")
    futures = tmp_path / "futures" / "um" / "BTCUSDT-aggTrades-2023-01-15.csv"
    futures.parent.mkdir(parents=True)
    futures.write_text(
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        "1617473562,20910.7,0.050,3125741370,3125741371,1673740800105,false\n"
    )
    s, f = read_dump(spot).row(0, named=True), read_dump(futures).row(0, named=True)
    assert (s["trade_id"], s["seq"], s["side"], s["ts"]) == (
        "3371243455",
        3371243455,
        "sell",
        ts(2025, 1, 15, 0, 0, 0, 8913),
    )
    assert s["amount"] == pytest.approx(94350.01 * 0.00017)
    assert (f["trade_id"], f["side"], f["amount"]) == ("1617473562", "buy", pytest.approx(20910.7 * 0.05))


def test_klines_spot_microseconds_and_futures_header(tmp_path):
    spot = tmp_path / "BTCUSDT-1m-2025-01-15.csv"
    spot.write_text(
        "1736899200000000,96534.05000000,96566.00000000,96520.01000000,96529.99000000,11.29458000,"
        "1736899259999999,1090441.36424660,3179,5.18733000,500827.42148870,0\n"
    )
    futures = tmp_path / "futures" / "um" / "BTCUSDT-1m-2023-01-15.csv"
    futures.parent.mkdir(parents=True)
    futures.write_text(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
        "taker_buy_quote_volume,ignore\n"
        "1673740800000,20910.7,20920.0,20900.1,20915.3,331.507,1673740859999,6933490.33,2102,150.1,"
        "3139532.1,0\n"
    )
    s, f = read_dump(spot), read_dump(futures)
    assert s.schema == pl.Schema(BARS_SCHEMA) and f.schema == pl.Schema(BARS_SCHEMA)
    assert s.row(0) == (
        ts(2025, 1, 15),
        "BINANCE",
        "BTCUSDT",
        96534.05,
        96566.0,
        96520.01,
        96529.99,
        11.29458,
        1090441.3642466,
        3179,
    )
    assert f.row(0) == (
        ts(2023, 1, 15),
        "BINANCE",
        "BTCUSDT",
        20910.7,
        20920.0,
        20900.1,
        20915.3,
        331.507,
        6933490.33,
        2102,
    )


def test_zip_round_trip_and_batches_equal_one_shot(tmp_path):
    trades = generate_trades("BTCUSDT", date(2025, 1, 15), 30_000, seed=4)
    path = write_dump(tmp_path / "BTCUSDT-trades-2025-01-15.zip", trades)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["BTCUSDT-trades-2025-01-15.csv"]
        first = archive.open("BTCUSDT-trades-2025-01-15.csv").readline().decode()
    assert first.count(",") == 6 and first.rstrip().endswith(("True,True", "False,True"))
    assert len(first.split(",")[4]) == 16  # microseconds in 2025
    batches = list(DumpReader(path).batches(batch_bytes=64 * 1024))
    assert len(batches) > 10 and max(b.height for b in batches) < 30_000
    one_shot = read_dump(path)
    assert_frame_equal(pl.concat(batches), one_shot, check_exact=True)
    assert_frame_equal(one_shot, trades, check_exact=True)


@pytest.mark.parametrize(
    "market, day, header, digits, endings",
    [
        ("spot", date(2024, 6, 3), False, 13, ("True,True", "False,True")),
        ("spot", date(2025, 2, 1), False, 16, ("True,True", "False,True")),
        ("um", date(2022, 1, 10), False, 13, (",true", ",false")),
        ("um", date(2023, 6, 3), True, 13, (",true", ",false")),
    ],
)
def test_written_files_look_like_the_vendors(tmp_path, market, day, header, digits, endings):
    trades = generate_trades("ETHUSDT", day, 500, seed=1, market=market)
    path = write_dump(tmp_path / f"ETHUSDT-trades-{day.isoformat()}.csv", trades, market=market)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,price,qty,quote_qty,time,is_buyer_maker") == header
    data = lines[1] if header else lines[0]
    assert len(data.split(",")[4]) == digits and data.endswith(endings)
    assert len(lines) == 500 + header
    assert_frame_equal(read_dump(path), trades, check_exact=True)


def test_generator_is_deterministic():
    a = generate_trades("BTCUSDT", date(2025, 1, 15), 1000, seed=7)
    assert_frame_equal(a, generate_trades("BTCUSDT", date(2025, 1, 15), 1000, seed=7))
    assert not a.equals(generate_trades("BTCUSDT", date(2025, 1, 15), 1000, seed=8))
    assert a["ts"].is_sorted() and a["ts"].dt.date().unique().to_list() == [date(2025, 1, 15)]
    assert a["trade_id"].n_unique() == 1000 and set(a["side"].unique()) == {"buy", "sell"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("4433425390,94350.O1000000,0.00017000,16.03950170,1736899200008913,True,True", "do not parse"),
        ("4433425390,94350.01000000,0.00017000,16.03950170,1736899200008913,Maybe,True", "do not parse"),
        ("4433425390,94350.01000000,,16.03950170,1736899200008913,True,True", "have no qty"),
        ("4433425390,94350.01000000,0.00017000,16.03950170,1736899200,True,True", "neither milliseconds"),
    ],
)
def test_a_bad_row_names_the_file_instrument_and_day(tmp_path, line, message):
    path = tmp_path / "BTCUSDT-trades-2025-01-15.csv"
    good = "4433425389,94350.01000000,0.00017000,16.03950170,1736899200008900,True,True\n"
    path.write_text(good * 3 + line + "\n" + good)
    with pytest.raises(SourceDataError, match=message) as error:
        read_dump(path)
    assert error.value.instrument == "BTCUSDT" and error.value.day == date(2025, 1, 15)
    assert "BTCUSDT-trades-2025-01-15.csv" in str(error.value)


@pytest.mark.parametrize("batch_bytes", [1, 7, 64, 10_000])
def test_chunks_end_at_line_ends_and_give_back_every_byte_once(batch_bytes, monkeypatch):
    import io

    from marketdata_assets.sources.binance_vision import dumps

    monkeypatch.setattr(dumps, "READ_BYTES", 5)  # lines longer than a read, reads shorter than a batch
    lines = [f"{i},{'x' * (i % 23)}".encode() for i in range(300)]
    text = b"\n".join(lines)  # no line's end after the last line
    chunks = list(dumps._chunks(io.BytesIO(text[10:]), text[:10], batch_bytes))
    assert b"".join(chunks) == text
    assert all(c.endswith(b"\n") for c in chunks[:-1]) and chunks[-1].endswith(b"299," + b"x" * (299 % 23))
    # about batch_bytes, to a line's end (the reads past the size are 5 bytes)
    assert all(len(c) <= batch_bytes + 5 + 30 for c in chunks)
