"""`trade_rows`: a collector's message decoded typed into `Trade`s (datasets/normalized.py), its error naming
the trade and field; one trade object, and an older collector's (`ts_ms`, text numbers, no amount nor seq),
read into the same row. No server: the rows are what an INSERT would send."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.stores.clickhouse.live import LIVE_COLUMNS, trade_rows

TS_US = 1_767_580_000_123_456
TRADE = Trade("BINANCE", "BTCUSDT", "9", 102.0, 0.5, 51.0, "sell", 9, TS_US, 0, TS_US * 1000 + 7)
STORED = {
    "ts": datetime(2026, 1, 5, 2, 26, 40, 123456, tzinfo=UTC),
    "venue": "BINANCE",
    "instrument": "BTCUSDT",
    "trade_id": "9",
    "price": 102.0,
    "quantity": 0.5,
    "amount": 51.0,
    "side": "sell",
    "seq": 9,
    "event_ts": datetime(2026, 1, 5, 2, 26, 40, 123456, tzinfo=UTC),  # event time 0: the trade's
    "recv_ts": datetime(2026, 1, 5, 2, 26, 40, 123456, tzinfo=UTC),
}
ROW = tuple(STORED.get(column) for column in LIVE_COLUMNS)  # a column the trade does not set: null


def test_a_batch_one_object_and_an_older_collectors_object_give_the_same_row():
    batch = msgspec.json.encode([TRADE, TRADE])
    assert trade_rows(batch) == [ROW, ROW]
    assert trade_rows(msgspec.json.encode(TRADE)) == [ROW]
    older = {"venue": "BINANCE", "instrument": "BTCUSDT", "trade_id": "9", "price": "102", "quantity": "0.5"}
    older |= {"side": "sell", "ts_ms": TS_US // 1000, "recv_ns": TS_US * 1000 + 7}
    (row,) = trade_rows(msgspec.json.encode(older))
    seq = LIVE_COLUMNS.index("seq")
    assert row[:seq] == (ROW[0].replace(microsecond=123000), *ROW[1:seq]) and row[seq] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", "102"), ("seq", 2**63), ("ts_us", 220_000_000_000_000_000), ("trade_id", ""), ("side", None)],
)  # text for a number, past Int64, the year 8941, an empty id, null
def test_a_trade_the_table_cannot_hold_refuses_its_message_naming_the_trade_and_field(field, value):
    bad = msgspec.structs.asdict(TRADE) | {field: value}
    with pytest.raises(msgspec.ValidationError) as refused:
        trade_rows(msgspec.json.encode([TRADE, bad]))
    assert str(refused.value).endswith(f" - at `$[1].{field}`")  # the second trade's field


def test_an_empty_batch_and_a_value_that_is_no_trade_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        trade_rows(b"[]")
    with pytest.raises(msgspec.ValidationError, match="Expected `object`, got `int`"):
        trade_rows(b"5")
