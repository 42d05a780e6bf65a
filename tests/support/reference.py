"""The venues' documented reference data for tests: their example answers of the instrument endpoints
(tests/fixtures/reference/, README there says where each comes from) as a master, and a small HTTP
server answering those endpoints from them as the venues do (OKX /api/v5/public/instruments, Deribit
public/get_instrument(s)), counting what it was asked."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlparse

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.sources.deribit import reference as deribit_reference
from marketdata_assets.sources.okx import reference as okx_reference

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
OKX_FILES = (
    "okx_instruments.json",
    "okx_instruments_spot_nautilus_trader.json",
    "okx_instruments_swap_nautilus_trader.json",
    "okx_instruments_futures_nautilus_trader.json",
    "okx_instruments_option_nautilus_trader.json",
)
DERIBIT_FILES = ("deribit_get_instruments.json", "deribit_get_instruments_nautilus_trader.json")
# Deribit instruments the documented examples leave out, as get_instrument answers them (the replay's
# perpetuals): ETH-PERPETUAL 1 USD, BTC_USDC-PERPETUAL 0.001 BTC (linear).
DERIBIT_EXTRA = [
    {
        "instrument_name": "ETH-PERPETUAL",
        "kind": "future",
        "base_currency": "ETH",
        "counter_currency": "USD",
        "quote_currency": "USD",
        "settlement_currency": "ETH",
        "instrument_type": "reversed",
        "contract_size": 1,
        "tick_size": 0.05,
        "min_trade_amount": 1,
        "creation_timestamp": 1552568454000,
        "expiration_timestamp": 32503708800000,
        "is_active": True,
        "settlement_period": "perpetual",
        "price_index": "eth_usd",
    },
    {
        "instrument_name": "BTC_USDC-PERPETUAL",
        "kind": "future",
        "base_currency": "BTC",
        "counter_currency": "USDC",
        "quote_currency": "USDC",
        "settlement_currency": "USDC",
        "instrument_type": "linear",
        "contract_size": 0.001,
        "tick_size": 1,
        "min_trade_amount": 0.001,
        "creation_timestamp": 1645000000000,
        "expiration_timestamp": 32503708800000,
        "is_active": True,
        "settlement_period": "perpetual",
        "price_index": "btc_usdc",
    },
]


def okx_records() -> list[dict]:
    seen: dict[str, dict] = {}
    for name in OKX_FILES:
        for record in json.loads((FIXTURES / name).read_text())["data"]:
            seen.setdefault(record["instId"], record)
    return list(seen.values())


def deribit_records() -> list[dict]:
    seen: dict[str, dict] = {}
    for name in DERIBIT_FILES:
        for record in json.loads((FIXTURES / name).read_text())["result"]:
            seen.setdefault(record["instrument_name"], record)
    for record in DERIBIT_EXTRA:
        seen.setdefault(record["instrument_name"], record)
    return list(seen.values())


def documented_master() -> Master:
    """Every documented instrument of OKX and Deribit, as first seen (no lookups)."""
    items = [
        *okx_reference.instruments_of(okx_records(), Page("OKX", "instruments")),
        *deribit_reference.instruments_of(deribit_records(), Page("DERIBIT", "instruments")),
    ]
    return Master(changes({}, items, datetime(2026, 1, 1, tzinfo=UTC), complete=False))


class ReferenceServer:
    """OKX's and Deribit's instrument endpoints answered from the documented records (`asked`: path ->
    requests). Use as a context manager; `url` is its base."""

    def __init__(self):
        self.asked: Counter = Counter()
        okx, deribit = okx_records(), deribit_records()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                return None

            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                owner.asked[url.path] += 1
                if url.path == okx_reference.PATH:
                    body = owner.okx_answer(okx, query)
                elif url.path.startswith("/api/v2/public/get_instrument"):
                    body = owner.deribit_answer(deribit, url.path, query)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def okx_answer(records: list[dict], query: dict) -> dict:
        if query.get("instType") == "OPTION" and not (query.get("instFamily") or query.get("uly")):
            return {"code": "51000", "msg": "Parameter instFamily error", "data": []}
        found = [
            r
            for r in records
            if r["instType"] == query.get("instType")
            and query.get("instId", r["instId"]) == r["instId"]
            and query.get("instFamily", r["instFamily"]) == r["instFamily"]
        ]
        if query.get("instId") and not found:
            return {"code": "51001", "msg": "Instrument ID or Spread ID doesn't exist.", "data": []}
        return {"code": "0", "msg": "", "data": found}

    @staticmethod
    def deribit_answer(records: list[dict], path: str, query: dict) -> dict:
        if path.endswith("get_instrument"):
            found = [r for r in records if r["instrument_name"] == query.get("instrument_name")]
            if not found:
                return {
                    "jsonrpc": "2.0",
                    "error": {
                        "message": "Invalid params",
                        "data": {"reason": "instrument not found", "param": "instrument_name"},
                        "code": -32602,
                    },
                }
            return {"jsonrpc": "2.0", "result": found[0]}
        found = [
            r
            for r in records
            if query.get("currency") in ("any", r["base_currency"])
            and query.get("kind", r["kind"]) == r["kind"]
        ]
        return {"jsonrpc": "2.0", "result": found}

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


_MASTER: list[Master] = []


def known(venue: str, instrument: str):
    """The documented record of one instrument (the master's Instrument)."""
    if not _MASTER:
        _MASTER.append(documented_master())
    found = _MASTER[0].at(venue, instrument)
    assert found is not None, f"{venue}:{instrument} is in no documented reference example"
    return found


def documented_service() -> InstrumentService:
    """An instrument service holding every documented instrument of OKX and Deribit (nothing to ask)."""
    if not _MASTER:
        _MASTER.append(documented_master())
    service = InstrumentService()
    service.master.add(version for key in _MASTER[0].current() for version in _MASTER[0].history(*key))
    return service


def asking(venue: str, url: str) -> InstrumentService:
    """An instrument service asking `venue`'s reference endpoint at `url` (its client) for what it lacks."""
    from marketdata_assets.ingest.instruments import reference_client

    return InstrumentService(providers={venue: reference_client(venue, url)})


def documented(protocol):
    """The same venue's stream protocol (its datasets) sized by the documented reference examples (no
    lookups); a venue whose sizes need none: as it is."""
    if protocol.instrument_service is None:
        return protocol
    return type(protocol)(datasets=protocol.datasets, instrument_service=documented_service())
