"""The collector's health in the UI while its hour is still open: every 30 s, an observation of
`live_trades` with what the running collector's /status says (per venue: health, connections,
frames, trades, gaps, reconnects; the consumer's acknowledged trades). The hourly loads observe each
hour once it closes; this shows data flowing within a minute of `make run`, and its numbers plot
over time in the asset's page.

Where: COLLECTOR_METRICS_HOST / COLLECTOR_METRICS_PORT (the collector's own settings). A collector
that does not answer is not an error (none may run here): the tick is skipped and says why.
"""

import json
import urllib.error
import urllib.request

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.markdown import table
from marketdata_assets.ingest.live.stats import status_overview

INTERVAL_S = 30
TIMEOUT_S = 3.0


def status_url() -> str | None:
    port = settings.get("COLLECTOR_METRICS_PORT").strip().lower()
    if not port.isdigit() or port == "0":  # off, or a free port nobody else knows
        return None
    host = settings.get("COLLECTOR_METRICS_HOST").strip() or "127.0.0.1"
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/status"


def observation(body: dict, url: str) -> dg.AssetObservation:
    """The observation of one /status body (its per-venue table, the totals as numbers to plot)."""
    rows, totals = status_overview(body)
    columns = [
        "venue",
        "health",
        "connections",
        "last_frame_age_s",
        "frames",
        "trades",
        "gaps",
        "disconnects",
        "overflow_frames",
        "publish_buffer",
    ]
    metadata = {
        "collector_status": dg.MetadataValue.md(table(columns, [[r[c] for c in columns] for r in rows])),
        "collector_url": url,
        "healthy": totals.pop("healthy"),
        **{f"live_{name}": dg.MetadataValue.int(int(value)) for name, value in totals.items()},
    }
    return dg.AssetObservation(asset_key="live_trades", metadata=metadata)


@dg.sensor(minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def live_collector_status(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Every 30 s, an observation of `live_trades` from the running collector's /status: a table per venue
    and the totals to plot (the open hour in the UI; skipped, saying why, when no collector answers)."""
    url = status_url()
    if url is None:
        return dg.SkipReason("COLLECTOR_METRICS_PORT is off or 0: no collector endpoint to read")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            body = json.loads(answer.read())
    except (OSError, urllib.error.URLError, ValueError) as error:
        return dg.SkipReason(f"no collector answered at {url} ({error})")
    try:
        return dg.SensorResult(asset_events=[observation(body, url)])
    except ValueError as error:
        return dg.SkipReason(f"{url} did not answer a collector's status: {error}")
