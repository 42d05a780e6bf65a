"""The read API's first-hour answers: a venue typo and the live table read as a dataset are errors that say
what is there and how to read it (not an empty frame, not "unknown dataset")."""

from __future__ import annotations

import pytest


def test_an_unknown_venue_of_the_instrument_master_is_an_error_naming_the_known_venues(reader):
    with pytest.raises(ValueError) as raised:
        reader.instruments("OKXX")
    assert str(raised.value) == (
        "unknown venue 'OKXX' (closest: OKX): the instrument master's venues are BINANCE, BINANCE_UM, "
        "DERIBIT, OKX"
    )
    assert reader.instruments("okx").height == 0  # a known venue with nothing stored yet: an empty frame


def test_the_live_table_read_as_a_dataset_says_how_it_is_read(reader):
    with pytest.raises(ValueError) as raised:
        reader.dataset("trades_live", "BINANCE", "BTCUSDT", "2025-01-15", "2025-01-16")
    assert str(raised.value) == (
        "'trades_live' is the live table (today's trades before their hourly load into trades), read with "
        "the trades: r.trades(venue, instrument, start, end, live=True) (each row's path: 'history' or "
        "'live'; docs/read.md, \"Today\")"
    )
