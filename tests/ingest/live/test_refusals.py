"""A frame the venue's parser refuses is counted under its dataset, instrument and reason: in the collector's
/status JSON, its metrics and one log line per new (instrument, reason). No process: the collector's own
processing path, fed a decoded frame."""

from __future__ import annotations

import json
import logging

from marketdata_assets.apps import collector_endpoints as endpoints
from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.stores.landing import LandingWriter
from tests.support.reference import ReferenceServer, asking

SWAP = "UNI-USD-SWAP"
PUSH = (
    '{"arg":{"channel":"open-interest","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP",'
    '"instType":"SWAP","oi":"5000","oiCcy":"50","oiUsd":"50000","ts":"1597026383085"}]}'
)
REASON = (
    "sizes are in contracts and the venue's reference data (GET /api/v5/public/instruments) does not know"
)


def test_a_refused_frame_shows_its_instrument_and_reason_in_status_metrics_and_the_log(tmp_path, caplog):
    with ReferenceServer() as server:  # OKX's documented instruments: UNI-USD-SWAP is not one of them
        protocol = OkxStream(datasets=("open_interest",), instrument_service=asking("OKX", server.url))
        collector = LiveCollector(
            protocol, CollectorConfig([SWAP], "ws://127.0.0.1:9", None), LandingWriter(tmp_path, "OKX"), None
        )
        with caplog.at_level(logging.WARNING, logger="marketdata_assets.ingest.live.stats"):
            for recv_ns in (1, 2, 3):
                collector.processing._on_event("c1", recv_ns, protocol.decode(PUSH))
        protocol.instrument_service.close()
    watched = endpoints.Watched([endpoints.Venue(collector, "OKX", 10.0)])
    counters = json.loads(json.dumps(endpoints.status(watched)))["venues"]["OKX"]["collector"]
    ((key, count),) = counters["refused"].items()
    dataset, instrument, reason = key.split("|")
    assert (dataset, instrument, count) == ("open_interest", SWAP, 3) and reason.startswith(REASON)
    assert counters["bad_frames"] == {"malformed_open_interest": 3}  # the totals by dataset stay
    (family,) = [f for f in endpoints.LiveCollector(watched).collect() if f.name == "marketdata_live_refused"]
    ((labels, value),) = [(s.labels, s.value) for s in family.samples if s.name.endswith("_total")]
    assert labels == {"venue": "OKX", "dataset": "open_interest", "instrument": SWAP, "reason": reason}
    assert value == 3
    (line,) = [r.getMessage() for r in caplog.records]  # one line for the three frames
    assert SWAP in line and "open_interest" in line and REASON in line
