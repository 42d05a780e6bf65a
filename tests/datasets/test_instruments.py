"""The point-in-time master (datasets/instruments.py): versions never overwritten, a day's universe as
it was, sizes by the version valid that day, one rate-limited lookup of an instrument never seen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from marketdata_assets.datasets.instruments import (
    Instrument,
    LookupFailed,
    Master,
    changes,
    frame,
    from_frame,
)

T0 = datetime(2025, 1, 10, tzinfo=UTC)


def swap(name: str = "BTC-USDT-SWAP", value: float = 0.01, **kw) -> Instrument:
    fields = {
        "venue": "OKX",
        "instrument": name,
        "type": "perpetual",
        "base": "BTC",
        "quote": "USDT",
        "settle": "USDT",
        "inverse": False,
        "contract_value": value,
        "contract_multiplier": 1.0,
        "contract_unit": "BTC",
        "tick_size": 0.1,
        "lot_size": 1.0,
        "min_size": 1.0,
        "listed": T0 - timedelta(days=30),
        "expires": None,
        "status": "live",
    }
    return Instrument(**{**fields, **kw})


def test_a_changed_contract_value_is_a_new_version_and_old_days_keep_the_old_one():
    first = changes({}, [swap()], T0)
    assert [(v.valid_from, v.instrument.contract_value) for v in first] == [(T0 - timedelta(days=30), 0.01)]
    master = Master(first)
    later = T0 + timedelta(days=5)
    second = changes(master.current(), [swap(value=0.001)], later)
    assert [(v.valid_from, v.instrument.contract_value) for v in second] == [(later, 0.001)]
    master.add(second)
    assert master.at("OKX", "BTC-USDT-SWAP", T0).contract_value == 0.01
    assert master.at("OKX", "BTC-USDT-SWAP", later).contract_value == 0.001
    assert len(master.history("OKX", "BTC-USDT-SWAP")) == 2  # nothing overwritten
    assert (
        changes(master.current(), [swap(value=0.001)], later + timedelta(days=1)) == []
    )  # no change, no version
    # the stored rows read back as the same versions
    assert from_frame(frame([*first, *second])) == [*first, *second]


def test_a_day_universe_has_no_survivor_bias():
    listed = T0 + timedelta(days=3)
    master = Master(
        changes(
            {},
            [
                swap(),
                swap("ETH-USDT-SWAP", 0.1, listed=listed, base="ETH", contract_unit="ETH"),
                swap("BTC-USDT-250117", type="future", expires=T0 + timedelta(days=7, hours=8)),
            ],
            T0,
        )
    )
    gone_at = T0 + timedelta(days=10)
    master.add(
        changes(
            master.current(),
            [swap("ETH-USDT-SWAP", 0.1, listed=listed, base="ETH", contract_unit="ETH")],
            gone_at,
        )
    )
    assert master.at("OKX", "BTC-USDT-SWAP").status == "gone"  # left the listing unannounced
    assert master.at("OKX", "BTC-USDT-250117").status == "expired"

    def names(day: date) -> list[str]:
        return [i.instrument for i in master.listed_on("OKX", day)]

    assert names(T0.date()) == ["BTC-USDT-250117", "BTC-USDT-SWAP"]  # ETH not listed yet
    assert names(listed.date()) == ["BTC-USDT-250117", "BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert names((T0 + timedelta(days=7)).date()) == [
        "BTC-USDT-250117",
        "BTC-USDT-SWAP",
        "ETH-USDT-SWAP",
    ]  # expiry day
    assert names((T0 + timedelta(days=8)).date()) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert names((gone_at - timedelta(days=1)).date()) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]  # its last day
    assert names(gone_at.date()) == ["ETH-USDT-SWAP"]  # missed at 00:00: not listed that day


def test_an_instrument_never_seen_is_looked_up_once_and_what_the_venue_does_not_know_is_remembered():
    asked: list[str] = []

    def lookup(venue: str, instrument: str) -> list[Instrument]:
        asked.append(instrument)
        return [swap(instrument, 10.0, inverse=True)] if instrument == "BTC-USD-SWAP" else []

    master = Master(lookup=lookup, min_interval_s=0.0)
    for _ in range(3):
        assert master.at("OKX", "BTC-USD-SWAP").size == 10.0
        assert master.at("OKX", "NOPE-USD-SWAP") is None
    assert asked == ["BTC-USD-SWAP", "NOPE-USD-SWAP"] and master.lookups == 2
    assert [v.instrument.instrument for v in master.added] == ["BTC-USD-SWAP"]  # for the caller to store


def test_lookups_of_one_venue_are_spaced():
    master = Master(min_interval_s=0.5)
    assert master.pause("OKX") == 0.0
    assert 0.4 < master.pause("OKX") <= 0.5
    assert master.pause("DERIBIT") == 0.0


def test_sizes_follow_the_venue_arithmetic():
    inverse = swap("BTC-USD-SWAP", 100.0, inverse=True, quote="USD", contract_unit="USD")
    assert inverse.base_and_quote(50_000.0, 3) == (300 / 50_000, 300)
    option = swap("BTC-USD-241217-92000-C", 1.0, contract_multiplier=0.01, type="option")
    assert option.base_and_quote(0.05, 2) == (0.02, 0.05 * 0.02)
    spot = swap("BTC-USDT", 1.0, type="spot")
    assert spot.base_and_quote(100.0, 2.5) == (2.5, 250.0)


def test_a_failed_lookup_is_not_asked_again_at_once():
    calls: list[str] = []

    def down(venue: str, instrument: str) -> list[Instrument]:
        calls.append(instrument)
        raise ConnectionError("venue unreachable")

    master = Master(lookup=down, min_interval_s=0.0, retry_s=60.0)
    with pytest.raises(ConnectionError):
        master.at("OKX", "BTC-USD-SWAP")
    for _ in range(5):  # every frame in the next minute: refused at once, the venue not asked
        with pytest.raises(LookupFailed, match="venue unreachable"):
            master.at("OKX", "BTC-USD-SWAP")
    assert calls == ["BTC-USD-SWAP"]


def test_an_instrument_first_seen_delisted_keeps_the_days_it_traded():
    """A symbol only the archive remembers: one version, delisted, listed on its first file's day and ended
    after its last."""
    first, ended = T0 - timedelta(days=40), T0 - timedelta(days=2)
    old = swap("OLD-USDT-SWAP", listed=first, expires=ended, status="delisted")
    master = Master(changes({}, [old], T0))
    assert [i.instrument for i in master.listed_on("OKX", (first - timedelta(days=1)).date())] == []
    assert [i.instrument for i in master.listed_on("OKX", first.date())] == ["OLD-USDT-SWAP"]
    assert [i.instrument for i in master.listed_on("OKX", (ended - timedelta(days=1)).date())] == [
        "OLD-USDT-SWAP"
    ]
    assert [i.instrument for i in master.listed_on("OKX", ended.date())] == []
