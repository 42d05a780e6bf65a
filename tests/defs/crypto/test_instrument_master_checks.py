"""The instrument master's checks and summary from the venues' refreshes (plain values: no Dagster run,
no venue)."""

from __future__ import annotations

from marketdata_assets.defs.crypto.instruments import _checks, _metadata
from marketdata_assets.ingest.instruments import Refresh


def _refresh(venue: str, **fields) -> Refresh:
    values = {"listed": 3, "versions": [], "new": [], "changed": {}, "ended": {}, **fields}
    return Refresh(venue, **values)


def test_an_instrument_gone_unannounced_and_a_changed_contract_value_warn_naming_them():
    refreshes = [
        _refresh("OKX", changed={"BTC-USD-SWAP": ["contract_value"], "ETH-USD-SWAP": ["status"]},
                 ended={"UNI-USD-SWAP": "gone", "BTC-USD-250328": "expired"}, versions=[1, 2, 3]),
        _refresh("BINANCE", listed=5, new=["NEWUSDT"], versions=[4], skipped={"no exchangeInfo": 2}),
    ]  # fmt: skip
    gone, values = _checks(refreshes)
    assert (gone.check_name, gone.passed, gone.metadata["gone"].value) == ("no_unannounced_ending", False, 1)
    assert "UNI-USD-SWAP" in gone.metadata["instruments"].value
    assert "BTC-USD-250328" not in gone.metadata["instruments"].value  # an expiry is announced
    assert (values.check_name, values.passed, values.metadata["changed"].value) == (
        "contract_values_steady",
        False,
        1,
    )
    assert "BTC-USD-SWAP" in values.metadata["instruments"].value
    assert "ETH-USD-SWAP" not in values.metadata["instruments"].value  # a status change is not a value's
    summary = _metadata(refreshes)
    assert (summary["listed"], summary["rows_written"]) == (8, 4)
    assert "no exchangeInfo 2" in summary["venues"].value


def test_a_quiet_refresh_passes_both_checks():
    gone, values = _checks([_refresh("DERIBIT")])
    assert gone.passed and values.passed and gone.metadata["instruments"].value == "none"
