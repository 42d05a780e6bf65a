"""The Deribit v2 public REST client (JSON-RPC over HTTP GET `/api/v2/public/<method>`): the methods asked,
their paging and windows, `LIMITS` and `ERRORS`; the answers are read by rest.py's parsers. The methods,
paging, amounts, limits and errors: docs/crypto-datasets.md, "Deribit REST"."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core.http import (
    ErrorTable,
    Limits,
    Page,
    SourceNotFound,
    SourcePermissionError,
    SourceRequestError,
    describe_request,
)
from marketdata_assets.datasets.frames import as_utc, ceil_ms, day_of, floor_ms, from_us, to_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.datasets.wire import finish, finish_bars, finish_trades
from marketdata_assets.sources.deribit import reference
from marketdata_assets.sources.deribit.naming import VENUE, chain_currency
from marketdata_assets.sources.deribit.rest import (
    liquidations_of,
    parse_chart,
    parse_funding,
    parse_open_interest,
    parse_option_chain,
    parse_order_book,
    parse_ticker,
    parse_trade_page,
    rpc_result,
)
from marketdata_assets.sources.deribit.units import size_of
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT, VENUE_BASICS, SizedVenueClient

DEFAULT_BASE_URL = "https://www.deribit.com"
# get_instruments: "Sustained rate: 1 request/second" (its own limit, apart from the other public methods)
LIMITS = Limits(
    requests_per_minute=1200, max_concurrency=8, endpoint_limits={"/api/v2/public/get_instruments": (1, 1.0)}
)
ERRORS = ErrorTable(
    exact={
        "10028": "rate_limited",  # too_many_requests (HTTP 429, or 400)
        "10040": "retry",  # "retry": the request cannot be processed now and should be retried
        "13888": "retry",  # timed_out
        "13028": "retry",  # temporarily_unavailable
        "11094": "retry",  # internal_server_error
        "10066": "rate_limited",  # too_many_concurrent_requests
        "10020": "not_found",  # invalid_or_unsupported_instrument
        "13009": "permission",  # unauthorized
        "13021": "permission",  # forbidden
    }
)
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
CHART_WINDOW = timedelta(minutes=1000)
FUNDING_WINDOW = timedelta(days=30)  # 720 hourly rows: under the ~744 one call answers [inferred]


class DeribitClient(SizedVenueClient):
    """Deribit public API (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "Deribit"
    name = VENUE
    BASE_URL = DEFAULT_BASE_URL
    PAGE_MAX = 1000  # get_last_trades_by_*: count "maximum 1000"
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        **VENUE_BASICS,
        "funding": HISTORY,
        "open_interest": SNAPSHOT,
        "liquidations": HISTORY,
        "option_chain": SNAPSHOT,
    }

    # ---- what Deribit's answers mean --------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return None
        data = error.get("data") or {}
        extra = ", ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, dict) else str(data)
        return error.get("code"), f"{error.get('message')}" + (f" ({extra})" if extra else "")

    def make_error(self, category, *, status, code, message, page):
        """The errors name the venue (DERIBIT), as its data errors do."""
        if category in ("permission", "unauthorized"):
            detail = f"code {code}: {message}" if code is not None else message
            return SourcePermissionError(VENUE, status, detail, request=page.request)
        if category in ("rejected", "not_found"):
            cls = SourceNotFound if category == "not_found" else SourceRequestError
            return cls(VENUE, page.instrument, status, code, message, request=page.request)
        return super().make_error(category, status=status, code=code, message=message, page=page)

    async def _public(
        self, method: str, params: dict[str, Any], *, instrument: str, day: date | None
    ) -> tuple[Any, Page]:
        path = f"/api/v2/public/{method}"
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- the instrument master (reference.py) -----------------------------------------------

    async def instruments(
        self, currency: str = "any", kind: str | None = None, expired: bool = False
    ) -> list[Instrument]:
        """get_instruments of `currency` (BTC, ETH, USDC, USDT, any) and `kind` (None: every kind), active
        ones or (`expired`) the recently expired ones."""
        params = {"currency": currency, "expired": str(expired).lower(), **({"kind": kind} if kind else {})}
        body, ctx = await self._public(
            reference.LIST_METHOD.removeprefix("public/"), params, instrument=currency, day=None
        )
        return reference.instruments_of(rpc_result(body, ctx), ctx)

    async def listing(self) -> list[Instrument]:
        """The whole master: every currency's active instruments and the recently expired ones."""
        return [*await self.instruments("any"), *await self.instruments("any", expired=True)]

    async def volumes(self, taken: datetime) -> list[Volume]:
        """Every instrument's 24 h volume, stamped `taken` (`reference.volumes_of`): a book summary per
        currency and kind (future, option, spot)."""
        out = []
        for currency in reference.CURRENCIES:
            for kind in reference.KINDS:
                body, ctx = await self._public(
                    reference.SUMMARY_METHOD.removeprefix("public/"),
                    {"currency": currency, "kind": kind},
                    instrument=f"{currency} {kind}",
                    day=None,
                )
                out += reference.volumes_of(rpc_result(body, ctx), taken, ctx)
        return out

    async def lookup(self, instrument: str) -> list[Instrument]:
        """get_instrument of one name ([] if Deribit does not know it)."""
        try:
            body, ctx = await self._public(
                reference.ONE_METHOD.removeprefix("public/"),
                {"instrument_name": instrument},
                instrument=instrument,
                day=None,
            )
        except (
            SourceRequestError
        ) as error:  # not found: its 10020, or get_instrument's -32602 "instrument not found"
            if (
                isinstance(error, SourceNotFound)
                or getattr(error, "code", None) in reference.UNKNOWN_INSTRUMENT
            ):
                return []
            raise
        return reference.instruments_of(rpc_result(body, ctx), ctx)

    async def listing_for(self, instruments: list[str]) -> list[Instrument]:
        """The listings that hold `instruments`: the whole master (`listing`: active and recently
        expired), two answers rather than a lookup each."""
        return await self.listing()

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        pages = await self._trade_pages(instrument, start, end)
        frames = [page for page, _ in pages]
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="forward")

    async def liquidations(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """The liquidated sides of the trades of [start, end) (the trades' paging)."""
        start, end = as_utc(start), as_utc(end)
        pages = await self._trade_pages(instrument, start, end)
        return finish(
            "liquidations",
            [liquidations_of(page, flags, instrument) for page, flags in pages],
            start,
            end,
            self.dropped.of(instrument),
            paged="forward",
        )

    async def _trade_pages(
        self, instrument: str, start: datetime, end: datetime
    ) -> list[tuple[pl.DataFrame, dict[str, str]]]:
        """Every page of trades of [start, end) with its liquidation flags: by time, by sequence
        where one millisecond fills a page; the trades of a millisecond seen twice are in two pages."""
        if end <= start:
            return []
        end_ms = ceil_ms(end) - 1  # inclusive on the venue
        cursor = floor_ms(start)
        pages: list[tuple[pl.DataFrame, dict[str, str]]] = []
        while True:
            params = {
                "instrument_name": instrument,
                "start_timestamp": cursor,
                "end_timestamp": end_ms,
                "count": self.page_limit,
                "sorting": "asc",
            }
            body, ctx = await self._public(
                "get_last_trades_by_instrument_and_time",
                params,
                instrument=instrument,
                day=day_of(from_us(cursor * 1000)),
            )
            page, has_more, flags = parse_trade_page(body, instrument, ctx)
            pages.append((page, flags))  # the trades of the millisecond `cursor` seen again: dropped later
            if not has_more or page.height == 0:
                break
            last_ms = to_us(page["ts"].max()) // 1000
            if last_ms <= cursor:
                # One millisecond fills the page: moving the start cannot progress, page by sequence.
                pages.extend(
                    await self._trades_by_seq(
                        instrument, int(page["seq"].max()) + 1, end_ms, day_of(from_us(cursor * 1000))
                    )
                )
                break
            cursor = last_ms
        return pages

    async def trades_by_seq(
        self, instrument: str, first_seq: int, last_seq: int, *, day: date | None = None
    ) -> pl.DataFrame:
        """Trades with first_seq <= trade_seq <= last_seq; `day` names the slice in errors."""
        pages = await self._trades_by_seq(instrument, first_seq, None, day, last_seq)
        frame = finish_trades([page for page, _ in pages], drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_seq, last_seq))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def _trades_by_seq(
        self,
        instrument: str,
        start_seq: int,
        end_ms: int | None,
        day: date | None,
        end_seq: int | None = None,
    ) -> list[tuple[pl.DataFrame, dict[str, str]]]:
        """Pages from `start_seq` until one passes `end_ms` (or reaches `end_seq`, asked as end_seq)."""
        pages = []
        while True:
            params = {
                "instrument_name": instrument,
                "start_seq": start_seq,
                "count": self.page_limit,
                "sorting": "asc",
            }
            if end_seq is not None:
                params.update(end_seq=end_seq, count=max(1, min(self.page_limit, end_seq - start_seq + 1)))
            body, ctx = await self._public(
                "get_last_trades_by_instrument", params, instrument=instrument, day=day
            )
            page, has_more, flags = parse_trade_page(body, instrument, ctx)
            if page.height:
                day = day_of(page["ts"].max())
            pages.append((page, flags))
            if (
                page.height == 0
                or not has_more
                or (end_ms is not None and to_us(page["ts"].max()) // 1000 > end_ms)
            ):
                return pages
            next_seq = int(page["seq"].max()) + 1
            if next_seq <= start_seq:
                raise ctx.error(f"trades by sequence from {start_seq} did not advance")
            if end_seq is not None and next_seq > end_seq:
                return pages
            start_seq = next_seq

    async def _order_book(self, instrument: str, depth: int) -> tuple[Any, Page]:
        """`public/get_order_book` to the least venue depth that holds `depth` levels: (body, page)."""
        venue_depth = next((d for d in BOOK_DEPTHS if d >= depth), BOOK_DEPTHS[-1])
        return await self._public(
            "get_order_book",
            {"instrument_name": instrument, "depth": venue_depth},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        body, ctx = await self._order_book(instrument, depth)
        return parse_order_book(body, instrument, ctx).filter(pl.col("level") < depth)

    async def order_book_body(self, instrument: str, depth: int = 1000) -> dict:
        """The `public/get_order_book` answer as sent (the JSON-RPC envelope; `result.change_id`, bids
        and asks): the snapshot a live book's gap hour is repaired with (landed raw by the collector)."""
        body, ctx = await self._order_book(instrument, depth)
        result = rpc_result(body, ctx)
        if (
            not isinstance(result, dict)
            or not isinstance(result.get("change_id"), int)
            or not all(isinstance(result.get(side), list) for side in ("bids", "asks"))
        ):
            raise ctx.error("get_order_book: no result with change_id, bids and asks")
        return body

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames: list[pl.DataFrame] = []
        cursor = start
        while cursor < end:
            window_end = min(cursor + CHART_WINDOW, end)
            params = {
                "instrument_name": instrument,
                "start_timestamp": ceil_ms(cursor),
                "end_timestamp": ceil_ms(window_end) - 1,
                "resolution": "1",
            }
            body, ctx = await self._public(
                "get_tradingview_chart_data", params, instrument=instrument, day=day_of(cursor)
            )
            frames.append(parse_chart(body, instrument, ctx))
            cursor = window_end
        return finish_bars(frames, start, end, self.dropped.of(instrument))

    # ---- tickers, open interest, funding, option chains --------------------------------------

    async def _ticker(self, instrument: str) -> tuple[Any, Page]:
        return await self._public(
            "ticker",
            {"instrument_name": instrument},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )

    async def tickers(self, instrument: str) -> pl.DataFrame:
        body, ctx = await self._ticker(instrument)
        return parse_ticker(body, instrument, ctx)

    async def open_interest(self, instrument: str) -> pl.DataFrame:
        known = await self.reference(instrument)
        size_of(instrument, known)  # a size the venue does not know fails before asking
        body, ctx = await self._ticker(instrument)
        return parse_open_interest(body, instrument, ctx, known)

    async def funding(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Hourly funding of [start, end), in windows of `FUNDING_WINDOW`."""
        start, end = as_utc(start), as_utc(end)
        frames, cursor = [], start
        while cursor < end:
            window_end = min(cursor + FUNDING_WINDOW, end)
            # start_timestamp exclusive [inferred], end_timestamp inclusive: the rows of [cursor, window_end)
            params = {
                "instrument_name": instrument,
                "start_timestamp": ceil_ms(cursor) - 1,
                "end_timestamp": ceil_ms(window_end) - 1,
            }
            body, ctx = await self._public(
                "get_funding_rate_history", params, instrument=instrument, day=day_of(cursor)
            )
            frames.append(parse_funding(body, instrument, ctx))
            cursor = window_end
        return finish("funding", frames, start, end, self.dropped.of(instrument))

    async def option_chain(self, instrument: str) -> pl.DataFrame:
        """Every option of the chain `instrument` ("BTC-OPTIONS") now, one book-summary request."""
        params = {"currency": chain_currency(instrument), "kind": "option"}
        body, ctx = await self._public(
            "get_book_summary_by_currency",
            params,
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )
        return parse_option_chain(body, instrument, ctx)


__all__ = ["ERRORS", "LIMITS", "DeribitClient"]
