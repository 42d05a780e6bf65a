"""A universe is a rule over the point-in-time master (datasets/universe.py): resolved per day, a
listing joins on its day, a delisted instrument belongs to the days it traded, excludes win; a top N ranks
by the volume snapshot taken before the day ended, a look-ahead said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.datasets.universe import UniverseRule, explain, resolution, resolve
from marketdata_assets.datasets.volumes import Volume, Volumes, pick
from tests.datasets.test_instruments import T0, swap


def master() -> Master:
    listed = T0 + timedelta(days=3)
    items = [
        swap(),
        swap("ETH-USDT-SWAP", 0.1, base="ETH", listed=listed),
        swap("BTC-USD-SWAP", 100.0, quote="USD", settle="BTC", inverse=True),
        swap("BTC-USDT", 1.0, type="spot"),
    ]
    book = Master(changes({}, items, T0))
    book.add(changes(book.current(), items[1:], T0 + timedelta(days=5)))  # BTC-USDT-SWAP left the listing
    return book


def test_a_rule_resolves_per_day_without_survivor_bias():
    book, rule = master(), UniverseRule("OKX", types=("perpetual",), settles=("USDT",))
    assert resolve(book, rule, T0.date()) == ["BTC-USDT-SWAP"]  # ETH not listed yet
    assert resolve(book, rule, (T0 + timedelta(days=3)).date()) == ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]
    assert resolve(book, rule, (T0 + timedelta(days=4)).date()) == [
        "BTC-USDT-SWAP",
        "ETH-USDT-SWAP",
    ]  # its last day
    assert resolve(book, rule, (T0 + timedelta(days=5)).date()) == [
        "ETH-USDT-SWAP"
    ]  # missed at 00:00 that day
    assert explain(book, rule, T0.date()) == {"listed": 3, "by rule": 1, "explicit": 0, "in the universe": 1}


def test_explicit_lists_include_and_exclude():
    book = master()
    assert resolve(book, UniverseRule("OKX", explicit=("BTC-USDT",)), T0.date()) == [
        "BTC-USDT"
    ]  # today's lists still work
    rule = UniverseRule("OKX", types=("perpetual",), exclude=("BTC-USD-SWAP",), include=("BTC-USDT",))
    assert resolve(book, rule, T0.date()) == ["BTC-USDT", "BTC-USDT-SWAP"]
    with pytest.raises(ValueError, match="type.*swap"):
        UniverseRule("OKX", types=("swap",))


# ---- top N by the venue's 24 h volume ---------------------------------------------------------

COINS = ("BTC", "ETH", "SOL", "XRP", "DOGE")


def spot_master() -> Master:
    items = [swap(f"{coin}-USDT", 1.0, type="spot", base=coin) for coin in COINS]
    items.append(swap("PEPE-USDT", 1.0, type="spot", base="PEPE", listed=T0 + timedelta(days=2, hours=9)))
    return Master(changes({}, items, T0))


def snapshot(taken, **volumes) -> list[Volume]:
    return [
        Volume("OKX", f"{coin}-USDT", taken, quote_volume, "USDT") for coin, quote_volume in volumes.items()
    ]


FIRST, SECOND = T0 + timedelta(hours=0, minutes=10), T0 + timedelta(days=3, minutes=10)  # two daily refreshes
BOOK = Volumes(
    [
        *snapshot(FIRST, BTC=900.0, ETH=500.0, SOL=500.0, XRP=20.0, DOGE=10.0),
        *snapshot(SECOND, BTC=900.0, ETH=30.0, SOL=40.0, XRP=700.0, DOGE=600.0),
    ]
)


def test_top_n_takes_the_largest_volumes_ties_by_name_and_keeps_explicit_and_include():
    book, day = spot_master(), T0.date()
    rule = UniverseRule("OKX", types=("spot",), top=2)
    assert resolve(book, rule, day, BOOK) == ["BTC-USDT", "ETH-USDT"]  # ETH and SOL tie at 500: by name
    assert resolve(book, rule, day, BOOK) == resolve(spot_master(), rule, day, BOOK)  # deterministic
    rule = UniverseRule(
        "OKX", types=("spot",), top=2, include=("DOGE-USDT",), exclude=("BTC-USDT",), explicit=("XRP-USDT",)
    )
    assert resolve(book, rule, day, BOOK) == ["DOGE-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"]
    counts = explain(book, rule, day, BOOK)
    assert (counts["before the cut"], counts["with a volume"], counts["after the cut"]) == (4, 4, 2)
    assert counts["top"] == f"top 2 by 24 h volume as of {FIRST:%Y-%m-%d %H:%M} UTC"
    assert explain(book, UniverseRule("OKX", types=("spot",)), day, BOOK) == {  # no top: counts as before
        "listed": 5,
        "by rule": 5,
        "explicit": 0,
        "in the universe": 5,
    }


def test_each_day_ranks_by_the_snapshot_taken_before_it_ended():
    book, rule = spot_master(), UniverseRule("OKX", types=("spot",), top=2)
    days = {offset: (T0 + timedelta(days=offset)).date() for offset in range(5)}
    assert resolve(book, rule, days[2], BOOK) == ["BTC-USDT", "ETH-USDT"]  # the first snapshot still
    assert resolve(book, rule, days[3], BOOK) == ["BTC-USDT", "XRP-USDT"]  # the second: taken that day
    assert resolve(book, rule, days[4], BOOK) == ["BTC-USDT", "XRP-USDT"]
    assert pick([FIRST, SECOND], days[2]) == (FIRST, False) and pick([FIRST, SECOND], days[3]) == (
        SECOND,
        False,
    )
    at_midnight = datetime.combine(days[3], datetime.min.time(), UTC)
    assert pick([FIRST, at_midnight], days[2]) == (FIRST, False)  # 00:00 of the next day is not the day's
    # PEPE, listed on day 2, is in no snapshot of BOOK: never ranked; one that holds it ranks it
    assert "PEPE-USDT" not in resolve(book, UniverseRule("OKX", types=("spot",), top=6), days[2], BOOK)
    assert resolve(book, rule, days[3], Volumes(snapshot(SECOND, PEPE=5000.0, BTC=1.0))) == [
        "BTC-USDT",
        "PEPE-USDT",
    ]


def test_a_day_before_the_first_snapshot_is_flagged_as_look_ahead_and_no_snapshot_takes_none():
    book, rule, before = (
        spot_master(),
        UniverseRule("OKX", types=("spot",), top=2),
        (T0 - timedelta(days=1)).date(),
    )
    assert resolve(book, rule, before, BOOK) == ["BTC-USDT", "ETH-USDT"]  # the first snapshot, after the day
    assert explain(book, rule, before, BOOK)["top"] == (
        f"top 2 by 24 h volume as of {FIRST:%Y-%m-%d %H:%M} UTC — after the day: look-ahead"
    )
    nothing = explain(book, UniverseRule("OKX", types=("spot",), top=2, explicit=("BTC-USDT",)), before)
    assert nothing["in the universe"] == 1 and "no volume snapshot" in nothing["top"]  # the explicit one only
    with pytest.raises(KeyError, match="not read"):  # a snapshot the resolution did not read: never guessed
        resolve(book, rule, T0.date(), Volumes(snapshot(SECOND, BTC=1.0), {"OKX": [FIRST, SECOND]}))
    with pytest.raises(ValueError, match="top is 0"):
        UniverseRule("OKX", top=0)


def test_the_resolver_of_the_runs_keeps_each_days_cut_and_says_the_look_ahead_days():
    from marketdata_assets.ingest.instruments import cut_warnings, universe_resolver

    book, cuts = spot_master(), {}
    universe = universe_resolver(book, {"OKX": UniverseRule("OKX", types=("spot",), top=1)}, BOOK, cuts)
    days = [(T0 + timedelta(days=k)).date() for k in (-2, -1, 0, 3)]
    assert [universe("OKX", day) for day in days] == [["BTC-USDT"]] * 4
    assert [cuts[("OKX", day)].snapshot.look_ahead for day in days] == [True, True, False, False]
    assert cut_warnings(cuts) == [
        (
            f"OKX {days[0]}..{days[1]} (2 day(s)): top 1 by 24 h volume as of "
            f"{FIRST:%Y-%m-%d %H:%M} UTC — after the day: look-ahead"
        )
    ]


# ---- what existed when: listing times learned, unknown ones said, explicit lists on listed days -------


def test_a_listing_learned_later_takes_the_days_before_it_out_and_is_kept_by_later_refreshes():
    seen = T0 + timedelta(days=100)
    unknown = swap("SOL-USDT", 1.0, type="spot", base="SOL", listed=None)
    book = Master(changes({}, [unknown], seen))
    rule = UniverseRule("OKX", types=("spot",), explicit=("ETH-USDT",))
    before = resolution(book, rule, T0.date())
    assert before.names == ["ETH-USDT", "SOL-USDT"]  # ETH-USDT: never seen, cannot tell; SOL: first sight
    assert before.look_ahead == ["SOL-USDT"] and before.by_rule == ["SOL-USDT"]
    assert resolution(book, rule, seen.date()).look_ahead == []  # seen listed that day: no look-ahead
    learned = changes(book.current(), [unknown._replace(listed=T0 + timedelta(days=50))], seen + timedelta(1))
    assert [(v.valid_from, v.instrument.listed) for v in learned] == [(T0 + timedelta(days=50),) * 2]
    book.add(learned)
    assert resolve(book, rule, T0.date()) == ["ETH-USDT"]  # not listed yet, said by the archive's first day
    assert resolve(book, rule, (T0 + timedelta(days=50)).date()) == ["ETH-USDT", "SOL-USDT"]
    assert changes(book.current(), [unknown], seen + timedelta(days=2)) == []  # a listing without it: kept


def test_explicit_instruments_are_in_only_on_the_days_they_were_listed():
    book = master()  # ETH-USDT-SWAP listed on day 3, BTC-USDT-SWAP gone on day 5
    rule = UniverseRule("OKX", explicit=("ETH-USDT-SWAP", "BTC-USDT-SWAP", "NEVER-SEEN"))
    first, late = resolution(book, rule, T0.date()), resolution(book, rule, (T0 + timedelta(days=6)).date())
    assert first.names == ["BTC-USDT-SWAP", "NEVER-SEEN"] and first.not_listed == ["ETH-USDT-SWAP"]
    assert late.names == ["ETH-USDT-SWAP", "NEVER-SEEN"] and late.not_listed == ["BTC-USDT-SWAP"]
    assert first.by_rule == [] and len(first.listed) == 3  # no rule: still what the venue listed
    assert rule.text == "no rule" and explain(book, rule, T0.date())["explicit not listed"] == 1
    both = UniverseRule("OKX", types=("perpetual",), settles=("USDT",), explicit=("BTC-USDT-SWAP",))
    assert explain(book, both, T0.date()) == {"listed": 3, "by rule": 1, "explicit": 1, "in the universe": 1}
    assert both.text == "types perpetual; settles USDT"


def test_a_run_resolving_days_before_first_sight_says_look_ahead_and_how_to_fix_it():
    from marketdata_assets.ingest.instruments import cut_warnings, universe_resolver

    seen = T0 + timedelta(days=100)
    book = Master(changes({}, [swap("SOL-USDT", 1.0, type="spot", base="SOL", listed=None)], seen))
    cuts, ahead = {}, {}
    resolve_day = universe_resolver(book, {"OKX": UniverseRule("OKX", types=("spot",))}, None, cuts, ahead)
    for day in (T0.date(), (T0 + timedelta(days=1)).date(), seen.date()):
        assert resolve_day("OKX", day) == ["SOL-USDT"]
    said = (
        f"OKX {T0.date()}..{(T0 + timedelta(days=1)).date()} (2 day(s)): 1 instrument(s) with no listing "
        "time, in by today's listing before the master first saw them — look-ahead (SOL-USDT); refresh the "
        "instrument master with the archive site reachable: `marketdata instruments`"
    )
    assert cut_warnings(cuts, ahead) == [said]


def test_every_quote_the_venue_lists_is_in_a_rules_universe_and_serves_its_datasets():
    """What an instrument is comes from the venue's record, not from a list of quote assets: a listed
    BINANCE:BTCPLN (and a quote asset no one wrote down, XYZW) is in a spot rule's universe, and the
    history datasets of a spot pair serve it; an archive-only symbol of such a quote is read by the quotes
    the venue lists."""
    from marketdata_assets.ingest.instruments import universe_resolver
    from marketdata_assets.sources.venues import contract_of, serves

    listed = [
        swap(name, 1.0, venue="BINANCE", type="spot", base=base, quote=quote, settle=quote)
        for name, base, quote in (
            ("BTCPLN", "BTC", "PLN"),
            ("ETHXYZW", "ETH", "XYZW"),
            ("BTCUSDT", "BTC", "USDT"),
        )
    ]
    book = Master(changes({}, listed, T0))
    universe = universe_resolver(book, {"BINANCE": UniverseRule("BINANCE", types=("spot",))})
    assert universe("BINANCE", T0.date()) == ["BTCPLN", "BTCUSDT", "ETHXYZW"]
    assert (
        serves("BINANCE", "trades", "BTCPLN") is not None and serves("BINANCE", "funding", "BTCPLN") is None
    )
    assert contract_of("BINANCE", "BTCPLN", book.at("BINANCE", "BTCPLN"))[2:5] == ("spot", "BTC", "PLN")
    named = contract_of("BINANCE", "SOLPLN", quotes={i.quote for i in listed})  # never seen: by the quotes
    assert (named.contract_type, named.base, named.quote) == ("spot", "SOL", "PLN")
    with pytest.raises(ValueError, match="no quote asset the venue lists ends 'SOLABC'"):
        contract_of("BINANCE", "SOLABC", quotes={i.quote for i in listed})
