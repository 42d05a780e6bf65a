"""The Yahoo Finance chart v8 client: asks through the shared `ApiClient.call` (`ERRORS`, `LIMITS`) in
windows of at most 7 days within the ~30 days Yahoo keeps 1-minute bars for, and reads each answer with
`parse_chart` (chart.py)."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from marketdata_assets.core.http import (
    ApiClient,
    ErrorCategory,
    Limits,
    Page,
    SourceDataError,
    SourceError,
    describe_request,
)
from marketdata_assets.datasets.frames import as_utc
from marketdata_assets.datasets.wire import count_quality, note_dropped
from marketdata_assets.sources.yahoo.chart import (
    ERRORS,
    PROVIDER,
    chart_error,
    day_label,
    merge_chart_data,
    parse_chart,
    yahoo_error,
)
from marketdata_assets.sources.yahoo.records import ChartData

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://query2.finance.yahoo.com"
CHART_PATH = "/v8/finance/chart/"
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
LIMITS = Limits(requests_per_minute=2000, max_concurrency=8)


class YahooChartClient(ApiClient):
    """Chart v8 client on the shared policy (`ERRORS`, `LIMITS`; a body that is not JSON is retried).

    `async with YahooChartClient(base_url) as yahoo: data = await yahoo.fetch_bars("VOD.L", start, end)`.
    """

    api_name = PROVIDER
    ERRORS = ERRORS
    LIMITS = LIMITS
    bad_body = "retry"  # a 200 cut short by a proxy: asked again, then a SourceDataError

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        max_days_per_request: float = 7.0,
        max_days_back: float | None = 30.0,
        clock: Callable[[], float] = time.time,
        user_agent: str = DEFAULT_USER_AGENT,
        **http: Any,  # ApiClient's: requests_per_minute, max_concurrency, timeout_s, retry, rng
    ):
        # Yahoo answers 429 to clients without a browser-like User-Agent.
        super().__init__(base_url, headers={"User-Agent": user_agent, "Accept": "application/json"}, **http)
        self.max_days_per_request = float(max_days_per_request)
        self.max_days_back = max_days_back
        self.clock = clock
        self.quality: dict[str, Counter] = {}  # instrument -> drop counts, requests, clipped windows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ---- what Yahoo's answers mean -------------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        return chart_error(payload)

    def make_error(
        self, category: ErrorCategory, *, status: int, code: Any, message: str, page: Page
    ) -> SourceError:
        if category in ("banned", "quota", "data"):
            return super().make_error(category, status=status, code=code, message=message, page=page)
        return yahoo_error(
            category,
            status=status,
            code=code,
            message=message,
            instrument=page.instrument or "?",
            request=page.request,
        )

    # ---- one request ---------------------------------------------------------------------------

    async def chart(self, instrument: str, period1: int, period2: int) -> ChartData:
        """One request for [period1, period2) (epoch seconds, at most `max_days_per_request`)."""
        path = CHART_PATH + quote(instrument, safe="=")  # "^FTSE" → "%5EFTSE"; "EURUSD=X" kept
        params = {
            "interval": "1m",
            "period1": str(int(period1)),
            "period2": str(int(period2)),
            "includePrePost": "false",
        }
        page = Page(PROVIDER, instrument, day_label(period1), describe_request("GET", path, params))
        # endpoint "chart": a 401/403 stops every instrument's requests, not only this path's
        payload = await self.call("GET", path, page=page, endpoint="chart", params=params)
        data = parse_chart(payload, instrument, start=int(period1), end=int(period2), request=page.request)
        data.requests = 1
        return data

    # ---- windows -------------------------------------------------------------------------------

    def windows(self, start: datetime, end: datetime, instrument: str = "") -> list[tuple[int, int]]:
        """[start, end) → request windows (epoch seconds) of at most `max_days_per_request`,
        clipped to Yahoo's 1-minute horizon (`max_days_back`, with 10 minutes of slack; the
        clipping is logged and counted as `clipped_windows`)."""
        lo, hi = math.floor(as_utc(start).timestamp()), math.ceil(as_utc(end).timestamp())
        now = self.clock()
        hi = min(hi, int(now) + 60)
        if self.max_days_back is not None:
            horizon = int(now - self.max_days_back * 86400 + 600)
            if hi <= horizon:
                raise SourceDataError(
                    instrument or None,
                    as_utc(start).date(),
                    f"Yahoo keeps 1-minute bars for the last {self.max_days_back:g} days only; "
                    f"the window ends {as_utc(end).isoformat()}, before "
                    f"{datetime.fromtimestamp(horizon, UTC).isoformat()}",
                    source=PROVIDER,
                )
            if lo < horizon:
                log.warning(
                    "%s %s: 1-minute bars exist for the last %g days only: window start %s clipped to %s",
                    PROVIDER,
                    instrument,
                    self.max_days_back,
                    datetime.fromtimestamp(lo, UTC).isoformat(),
                    datetime.fromtimestamp(horizon, UTC).isoformat(),
                )
                self._count(instrument, clipped_windows=1)
                lo = horizon
        step = int(self.max_days_per_request * 86400)
        out, cursor = [], lo
        while cursor < hi:
            out.append((cursor, min(hi, cursor + step)))
            cursor += step
        return out

    def _count(self, instrument: str, **counts: int) -> None:
        count_quality(self.quality, instrument, counts)

    async def fetch_bars(self, instrument: str, start: datetime, end: datetime) -> ChartData:
        """Bars opening in [start, end) (aware datetimes, naive = UTC), chunked and merged, with
        the currency, exchange and drop counts."""
        parts = [await self.chart(instrument, p1, p2) for p1, p2 in self.windows(start, end, instrument)]
        data = merge_chart_data(parts, instrument)
        count_quality(self.quality, instrument, {"requests": data.requests, **data.counts()}, note=False)
        for (reason, day), rows in data.dropped_on.items():
            note_dropped(instrument, reason, rows, day)
        if data.null_minutes or data.partial_rows:
            log.info(
                "%s %s: dropped %d null minutes and %d partially null rows",
                PROVIDER,
                instrument,
                data.null_minutes,
                data.partial_rows,
            )
        return data

    def figures(self) -> dict[str, Any]:
        """Request counters and data-quality counts, for materialization metadata."""
        totals: Counter = Counter()
        for counter in self.quality.values():
            totals.update(counter)
        return {
            **super().figures(),
            "dropped_null_minutes": totals.get("null_minutes", 0),
            "dropped_partial_rows": totals.get("partial_rows", 0),
            "dropped_duplicates": totals.get("duplicates", 0),
            "dropped_outside_window": totals.get("outside", 0),
            "denoised_prices": totals.get("denoised", 0),
            "floored_off_minute": totals.get("off_minute", 0),
            "answers_without_currency": totals.get("no_currency", 0),
            "clipped_windows": totals.get("clipped_windows", 0),
        }


__all__ = ["LIMITS", "YahooChartClient"]
