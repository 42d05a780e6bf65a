"""What a Binance symbol stands for: the contract a spot, USD-M or COIN-M name is (`contract`) and the
pair a USD-M instrument's index price is asked by (`pair_of`): the names' meaning, apart from the REST code,
for the venue's Source (`contract=`) and the USD-M client."""

from __future__ import annotations

from collections.abc import Iterable

from marketdata_assets.core.contracts import Contract, bad_name, split_pair, yymmdd


def contract(venue: str, instrument: str, quotes: Iterable[str] = ()) -> Contract:
    """What a Binance symbol of `venue` (BINANCE, BINANCE_UM, BINANCE_CM) the master never saw stands for
    (core/contracts.py has the shapes), its pair split by the quote assets the venue lists (`quotes`; none:
    the quote left "", the type still read); ValueError for another shape."""
    pair, _, suffix = instrument.partition("_")
    base, quote = split_pair(venue, instrument, pair, quotes)
    if venue == "BINANCE":
        if suffix:
            raise bad_name(venue, instrument, "a spot symbol has no '_'")
        return Contract(venue, instrument, "spot", base, quote)
    inverse = venue == "BINANCE_CM"
    if suffix in ("", "PERP") and (suffix == "PERP") == inverse:
        return Contract(venue, instrument, "perpetual", base, quote, inverse=inverse)
    if suffix:
        return Contract(
            venue, instrument, "future", base, quote, yymmdd(venue, instrument, suffix), inverse=inverse
        )
    raise bad_name(venue, instrument, "a COIN-M perpetual is BASEUSD_PERP")


def pair_of(instrument: str) -> str:
    """The pair `indexPriceKlines` asks for: BTCUSDT for BTCUSDT and BTCUSDT_250328."""
    return instrument.partition("_")[0]


__all__ = ["contract", "pair_of"]
