"""Instrument names read as contracts (each venue's declared naming, core.contracts' shapes): the venues'
documented shapes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from marketdata_assets.sources.binance.naming import contract as binance_contract
from marketdata_assets.sources.venues import contract_of

LISTED_QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "USD", "EUR", "TRY")  # as exchangeInfo lists


def read(venue: str, instrument: str):
    """Through the registry (each venue's declared naming; Binance's pairs split by the quote assets the
    venue lists); COIN-M, no registered source, by Binance's reader."""
    if venue == "BINANCE_CM":
        return binance_contract(venue, instrument, LISTED_QUOTES)
    return contract_of(venue, instrument, quotes=LISTED_QUOTES if venue.startswith("BINANCE") else ())


@pytest.mark.parametrize(
    ("venue", "instrument", "expected"),
    [
        ("DERIBIT", "BTC-PERPETUAL", ("perpetual", "BTC", "USD", None, None, None, True)),
        ("DERIBIT", "BTC_USDC-PERPETUAL", ("perpetual", "BTC", "USDC", None, None, None, False)),
        ("DERIBIT", "ETH-27DEC24", ("future", "ETH", "USD", date(2024, 12, 27), None, None, True)),
        ("DERIBIT", "BTC-5JAN24-60000-C", ("option", "BTC", "USD", date(2024, 1, 5), 60000.0, "C", False)),
        (
            "DERIBIT",
            "XRP_USDC-30JUN23-0d625-P",
            ("option", "XRP", "USDC", date(2023, 6, 30), 0.625, "P", False),
        ),
        ("DERIBIT", "BTC_USDC", ("spot", "BTC", "USDC", None, None, None, False)),
        ("OKX", "BTC-USDT", ("spot", "BTC", "USDT", None, None, None, False)),
        ("OKX", "BTC-USDT-SWAP", ("perpetual", "BTC", "USDT", None, None, None, False)),
        ("OKX", "BTC-USD-SWAP", ("perpetual", "BTC", "USD", None, None, None, True)),
        ("OKX", "BTC-USD-250328", ("future", "BTC", "USD", date(2025, 3, 28), None, None, True)),
        ("OKX", "BTC-USD-250328-100000-C", ("option", "BTC", "USD", date(2025, 3, 28), 100000.0, "C", False)),
        ("BINANCE", "BTCUSDT", ("spot", "BTC", "USDT", None, None, None, False)),
        ("BINANCE", "ETHBTC", ("spot", "ETH", "BTC", None, None, None, False)),
        ("BINANCE", "BTCFDUSD", ("spot", "BTC", "FDUSD", None, None, None, False)),
        ("BINANCE_UM", "BTCUSDT", ("perpetual", "BTC", "USDT", None, None, None, False)),
        ("BINANCE_UM", "BTCUSDT_250328", ("future", "BTC", "USDT", date(2025, 3, 28), None, None, False)),
        ("BINANCE_CM", "BTCUSD_PERP", ("perpetual", "BTC", "USD", None, None, None, True)),
        ("BINANCE_CM", "ETHUSD_250627", ("future", "ETH", "USD", date(2025, 6, 27), None, None, True)),
    ],
)
def test_each_venue_shape_reads_as_its_contract(venue, instrument, expected):
    contract = read(venue, instrument)
    assert (
        contract.contract_type,
        contract.base,
        contract.quote,
        contract.expiry,
        contract.strike,
        contract.option_type,
        contract.inverse,
    ) == expected
    assert (contract.venue, contract.instrument) == (venue, instrument)


def test_a_dated_contract_expires_at_eight_utc():
    assert contract_of("DERIBIT", "BTC-27DEC24").expires_at == datetime(2024, 12, 27, 8, tzinfo=UTC)
    assert contract_of("OKX", "BTC-USDT-SWAP").expires_at is None


@pytest.mark.parametrize(
    ("venue", "instrument", "why"),
    [
        ("DERIBIT", "BTC-31FEB24", "expiry '31FEB24' is not a date"),
        ("DERIBIT", "BTC-27DEC24-60k-C", "strike '60k' is not a number"),
        ("DERIBIT", "BTC-27DEC24-60000-X", "option type 'X' is not C or P"),
        ("DERIBIT", "BTC", "a spot pair is BASE_QUOTE"),
        ("OKX", "BTC-USD-2503", "expiry '2503' is not YYMMDD"),
        ("BINANCE", "BTCUSDT_250328", "a spot symbol has no '_'"),
        ("BINANCE_UM", "BTCXYZ", "no quote asset the venue lists ends 'BTCXYZ'"),
        ("BINANCE_CM", "BTCUSD", "a COIN-M perpetual is BASEUSD_PERP"),
    ],
)
def test_a_name_of_no_known_shape_is_an_error_naming_it(venue, instrument, why):
    with pytest.raises(ValueError, match=f"^{venue}:{instrument} is not a {venue} instrument name: .*{why}"):
        read(venue, instrument)
    with pytest.raises(ValueError, match="no contract naming known for venue 'SSE'"):
        contract_of("SSE", "600000.SH")
