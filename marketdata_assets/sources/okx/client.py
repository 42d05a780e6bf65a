"""OKX v5 public market data, the HTTP client: `OkxClient`, its endpoints and paging, `LIMITS`, `ERRORS`
and how far back each history reaches; rest.py parses the answers. The paging, limits and errors as
read: docs/crypto-datasets.md, "OKX v5 REST as read".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core.http import ErrorTable, Limits, Page, SourceNotFound, describe_request
from marketdata_assets.datasets.frames import as_utc, ceil_ms, day_of, day_window, from_us, to_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.datasets.wire import (
    finish,
    finish_bars,
    finish_trades,
    integer,
    note_conversion,
)
from marketdata_assets.sources.interface import HISTORY, VENUE_BASICS, Reach, SizedVenueClient
from marketdata_assets.sources.okx import reference
from marketdata_assets.sources.okx.naming import contract, is_derivative, underlying
from marketdata_assets.sources.okx.rest import (
    VENUE,
    envelope_data,
    funding_frame,
    funding_rows,
    liquidation_answer,
    parse_books,
    parse_candles,
    parse_history_trades,
    parse_open_interest_history,
    parse_price_candles,
    parse_ticker,
)

DEFAULT_BASE_URL = "https://www.okx.com"
DOCS = "https://www.okx.com/docs-v5/en/"
NOWHERE = "nowhere in this project"
MAX_BOOK_DEPTH = 400

TICKER = "/api/v5/market/ticker"
FUNDING_HISTORY = "/api/v5/public/funding-rate-history"
OPEN_INTEREST_HISTORY = "/api/v5/rubik/stat/contracts/open-interest-history"
LIQUIDATION_ORDERS = "/api/v5/public/liquidation-orders"
HISTORY_CANDLES = "/api/v5/market/history-candles"
MARK_CANDLES = "/api/v5/market/history-mark-price-candles"
INDEX_CANDLES = "/api/v5/market/history-index-candles"

LIMITS = Limits(
    requests_per_minute=600,
    max_concurrency=8,
    endpoint_limits={
        "/api/v5/market/history-trades": (20, 2.0),
        "/api/v5/market/books": (40, 2.0),
        HISTORY_CANDLES: (20, 2.0),
        TICKER: (20, 2.0),
        FUNDING_HISTORY: (10, 2.0),
        OPEN_INTEREST_HISTORY: (10, 2.0),
        LIQUIDATION_ORDERS: (20, 2.0),
        MARK_CANDLES: (20, 2.0),
        INDEX_CANDLES: (10, 2.0),
        reference.PATH: (20, 2.0),
        reference.UNDERLYING_PATH: (20, 2.0),
        reference.TICKERS_PATH: (20, 2.0),
    },
)
ERRORS = ErrorTable(
    exact={
        "50011": "rate_limited",  # "Too Many Requests" (HTTP 429, or 200)
        "50001": "retry",  # service temporarily unavailable
        "50004": "retry",  # endpoint request timeout
        "50013": "retry",  # systems are busy
        "50026": "retry",  # system error, try again later
        "51001": "not_found",  # instrument ID does not exist
    }
)


class OkxClient(SizedVenueClient):
    """OKX v5 public market data (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "OKX"
    name = VENUE
    BASE_URL = DEFAULT_BASE_URL
    PAGE_MAX = 100  # history-trades: "Maximum is 100" a request
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        **VENUE_BASICS,
        "funding": HISTORY,
        "open_interest": HISTORY,
        "liquidations": HISTORY,
        "mark_bars_1m": HISTORY,
        "index_bars_1m": HISTORY,
    }
    # how far back OKX's history goes (documented): history-trades "from the last 3 months",
    # funding-rate-history "the last 3 months", rubik open interest "the latest 1,440 data entries"
    # (5 days of 5-minute rows)
    REACH: ClassVar[dict[str, Reach]] = {
        "trades": Reach(
            timedelta(days=90), NOWHERE, DOCS + "#order-book-trading-market-data-get-trades-history"
        ),
        "funding": Reach(
            timedelta(days=90), NOWHERE, DOCS + "#public-data-rest-api-get-funding-rate-history"
        ),
        "open_interest": Reach(
            timedelta(minutes=5 * 1440),
            NOWHERE,
            DOCS + "#trading-statistics-rest-api-get-contract-open-interest-history",
        ),
    }

    # ---- what OKX's answers mean ------------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        if not isinstance(payload, dict) or "code" not in payload or payload["code"] == "0":
            return None
        message = payload.get("msg") or payload.get("error_message") or payload.get("detail") or ""
        return payload["code"], str(message)

    def make_error(self, category, *, status, code, message, page):
        if status == 404 and code is not None and not isinstance(code, str):  # OKX's codes are strings
            message = f"unknown path or endpoint ({message})"
        return super().make_error(category, status=status, code=code, message=message, page=page)

    async def _get(
        self, path: str, params: dict[str, Any], *, instrument: str, day: date | None
    ) -> tuple[Any, Page]:
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- the instrument master (reference.py) -----------------------------------------------

    async def instruments(self, inst_type: str, family: str | None = None) -> list[Instrument]:
        """Every instrument of `inst_type` (SPOT, SWAP, FUTURES; OPTION: of the `family`, as OKX requires)."""
        params = {"instType": inst_type, **({"instFamily": family} if family else {})}
        body, ctx = await self._get(reference.PATH, params, instrument=family or inst_type, day=None)
        return reference.instruments_of(envelope_data(body, ctx), ctx)

    async def option_families(self) -> list[str]:
        """The option families OKX lists (`/api/v5/public/underlying?instType=OPTION`: [[BTC-USD, ...]])."""
        body, ctx = await self._get(
            reference.UNDERLYING_PATH, {"instType": "OPTION"}, instrument="OPTION", day=None
        )
        data = envelope_data(body, ctx)
        return [str(name) for name in (data[0] if data and isinstance(data[0], list) else data)]

    async def listing(self) -> list[Instrument]:
        """The whole master: spot, swaps, futures, and the options of every family."""
        out = [item for inst_type in reference.INST_TYPES[:3] for item in await self.instruments(inst_type)]
        for family in await self.option_families():
            out.extend(await self.instruments("OPTION", family))
        return out

    async def volumes(self, taken: datetime) -> list[Volume]:
        """Every instrument's 24 h volume, stamped `taken` (`reference.volumes_of`): the tickers of SPOT,
        SWAP, FUTURES and of each option family."""
        asked = [{"instType": inst_type} for inst_type in reference.INST_TYPES[:3]]
        asked += [{"instType": "OPTION", "instFamily": family} for family in await self.option_families()]
        pages = []
        for params in asked:
            body, ctx = await self._get(reference.TICKERS_PATH, params, instrument="tickers", day=None)
            pages.append((envelope_data(body, ctx), ctx))
        return reference.volumes_of(pages, taken)

    async def lookup(self, instrument: str) -> list[Instrument]:
        """One instrument as the venue lists it ([] if OKX does not know it: its 51001, or no data)."""
        named = contract(instrument)
        inst_type = reference.INST_TYPE_OF[named.contract_type]
        params = reference.lookup_params(instrument, inst_type, f"{named.base}-{named.quote}")
        try:
            body, ctx = await self._get(reference.PATH, params, instrument=instrument, day=None)
        except SourceNotFound:
            return []
        return reference.instruments_of(envelope_data(body, ctx), ctx)

    async def reference(self, instrument: str, when: datetime | None = None) -> Instrument | None:
        """The master's version of a contract (`SizedVenueClient.reference`); None for spot."""
        return await super().reference(instrument, when) if is_derivative(instrument) else None

    async def listing_for(self, instruments: list[str]) -> list[Instrument]:
        """The listings that hold `instruments` (contracts): one request per instrument type, an option's per
        family (the service asks this before their first frames, not a lookup each)."""
        out = []
        for params, _ in reference.listing_requests(instruments):
            out += await self.instruments(params["instType"], params.get("instFamily"))
        return out

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return finish_trades([])
        start_us = to_us(start)
        params: dict[str, Any] = {
            "instId": instrument,
            "type": "2",
            "after": str(ceil_ms(end)),
            "limit": str(self.page_limit),
        }
        ref = await self.reference(instrument, start)
        frames: list[pl.DataFrame] = []
        day = day_of(from_us(to_us(end) - 1))  # the first page holds the newest trades
        while True:
            body, ctx = await self._get(
                "/api/v5/market/history-trades", params, instrument=instrument, day=day
            )
            page = parse_history_trades(body, instrument, ctx, ref)
            if page.height == 0:
                break
            frames.append(page)
            oldest = to_us(page["ts"].min())
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if oldest < start_us:  # a short page is not trusted to mean "no more": only an empty one is
                break
            if params.get("type") == "1" and int(smallest) >= int(params["after"]):
                raise ctx.error(f"history-trades page for after={params['after']} did not go back in tradeId")
            day = day_of(from_us(oldest))
            params = {
                "instId": instrument,
                "type": "1",
                "after": str(smallest),
                "limit": str(self.page_limit),
            }
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="backward")

    async def trades_by_id(
        self, instrument: str, first_id: int, last_id: int, *, day: date | None = None
    ) -> pl.DataFrame:
        """Trades with first_id <= tradeId <= last_id (history-trades, `type=1`, paging back by
        `after`); `day` names the slice in errors."""
        frames: list[pl.DataFrame] = []
        after = last_id + 1
        ref = await self.reference(instrument, day_window(day)[0] if day else None)
        while after > first_id:
            params = {
                "instId": instrument,
                "type": "1",
                "after": str(after),
                "limit": str(min(self.page_limit, after - first_id)),
            }
            body, ctx = await self._get(
                "/api/v5/market/history-trades", params, instrument=instrument, day=day
            )
            page = parse_history_trades(body, instrument, ctx, ref)
            if page.height == 0:
                break
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if int(smallest) >= after:
                raise ctx.error(f"history-trades page for after={after} did not go back in tradeId")
            frames.append(page)
            after = int(smallest)
        frame = finish_trades(frames, drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_id, last_id))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            raise ValueError(f"OKX books depth: 1..{MAX_BOOK_DEPTH}")
        ref = await self.reference(instrument)
        body, ctx = await self._get(
            "/api/v5/market/books",
            {"instId": instrument, "sz": str(depth)},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )
        return parse_books(body, instrument, ctx, ref).filter(pl.col("level") < depth)

    async def books_body(self, instrument: str, depth: int = MAX_BOOK_DEPTH) -> dict:
        """The `/api/v5/market/books` answer as sent (the envelope, levels as the venue's strings): the
        snapshot a live book's gap hour is repaired with (landed raw by the collector)."""
        depth = max(1, min(depth, MAX_BOOK_DEPTH))
        body, ctx = await self._get(
            "/api/v5/market/books",
            {"instId": instrument, "sz": str(depth)},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )
        data = envelope_data(body, ctx)
        if (
            not data
            or not isinstance(data[0], dict)
            or not all(isinstance(data[0].get(s), list) for s in ("bids", "asks"))
        ):
            raise ctx.error("books: no data[0] with bids and asks lists")
        return body

    async def _candle_pages(
        self, path: str, inst_id: str, instrument: str, start: datetime, end: datetime, parse
    ) -> list[pl.DataFrame]:
        """1-minute candles of `path` (history-candles, its mark and index price kin) opening in
        [start, end) and a little before, newest first: `after` = the oldest candle held, until a
        page opens at or before `start` or is empty. `parse(body, ctx)` makes a page's frame."""
        start_us = to_us(as_utc(start))
        after = ceil_ms(as_utc(end))
        frames: list[pl.DataFrame] = []
        while after * 1000 > start_us:
            params = {"instId": inst_id, "bar": "1m", "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get(
                path, params, instrument=instrument, day=day_of(from_us(after * 1000 - 1))
            )
            data = body.get("data") if isinstance(body, dict) else body
            page = parse(body, ctx)
            if not data:
                break
            frames.append(page)
            oldest_ms = min(integer(row[0], "candle ts", ctx) for row in data)
            if oldest_ms >= after:
                raise ctx.error(f"{path.rsplit('/', 1)[-1]} page for after={after} did not go back in time")
            after = oldest_ms
        return frames

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        drops = self.dropped.of(instrument)
        ref = await self.reference(instrument, as_utc(start))
        frames = await self._candle_pages(
            HISTORY_CANDLES,
            instrument,
            instrument,
            start,
            end,
            lambda body, ctx: parse_candles(body, instrument, ctx, ref, drops),
        )
        return finish_bars(frames, start, end, drops, paged="backward")

    async def mark_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Mark price 1-minute bars of a contract (history-mark-price-candles)."""
        return await self._price_bars("mark_bars_1m", MARK_CANDLES, instrument, instrument, start, end)

    async def index_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars of the contract's index (history-index-candles of `underlying(instrument)`,
        "BTC-USDT" for BTC-USDT-SWAP), stored under the contract's name."""
        index = underlying(instrument)
        note_conversion(instrument, f"index {index}")
        return await self._price_bars("index_bars_1m", INDEX_CANDLES, index, instrument, start, end)

    async def _price_bars(
        self, dataset: str, path: str, asked: str, instrument: str, start: datetime, end: datetime
    ) -> pl.DataFrame:
        """`dataset`'s bars from `path`'s candles of `asked`, stored under `instrument`'s name."""
        drops = self.dropped.of(instrument)
        frames = await self._candle_pages(
            path,
            asked,
            instrument,
            start,
            end,
            lambda body, ctx: parse_price_candles(body, instrument, ctx, drops, dataset),
        )
        return finish(dataset, frames, start, end, drops, paged="backward")

    # ---- tickers, funding, open interest, liquidations -------------------------------------

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """The ticker now (one row stamped with OKX's `ts`)."""
        ref = await self.reference(instrument)
        body, ctx = await self._get(
            TICKER, {"instId": instrument}, instrument=instrument, day=day_of(datetime.now().astimezone())
        )
        return parse_ticker(body, instrument, ctx, ref)

    async def funding(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Funding settled in [start, end) (funding-rate-history, newest first, `after` = the oldest
        fundingTime held), paged on to one settlement before `start` for its interval."""
        start, end = as_utc(start), as_utc(end)
        drops = self.dropped.of(instrument)
        if end <= start:
            return finish("funding", [])
        start_us, after = to_us(start), ceil_ms(end)
        rows: list[tuple[int, float]] = []
        ctx = Page(VENUE, instrument, day_of(start))
        while True:
            params = {"instId": instrument, "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get(
                FUNDING_HISTORY, params, instrument=instrument, day=day_of(from_us(after * 1000 - 1))
            )
            page = funding_rows(body, instrument, ctx)
            if not page:
                break
            rows.extend(page)
            oldest = min(ts for ts, _ in page)
            if oldest < start_us:  # the settlement before the window is held: its spacing is known
                break
            if oldest // 1000 >= after:
                raise ctx.error(f"funding-rate-history page for after={after} did not go back in time")
            after = oldest // 1000
        frame = funding_frame(rows, instrument, ctx, drops)
        return finish("funding", [frame], start, end, drops, paged="backward")

    async def open_interest(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Open interest every 5 minutes in [start, end) (rubik open-interest-history, period=5m,
        newest first, `end` = the oldest ts held, `begin` = just before `start`)."""
        start, end = as_utc(start), as_utc(end)
        drops = self.dropped.of(instrument)
        start_ms, end_ms = ceil_ms(start), ceil_ms(end)
        frames: list[pl.DataFrame] = []
        while end_ms > start_ms:
            ref = await self.reference(instrument, from_us(end_ms * 1000 - 1))
            params = {
                "instId": instrument,
                "period": "5m",
                "begin": str(start_ms - 1),
                "end": str(end_ms),
                "limit": str(self.page_limit),
            }
            body, ctx = await self._get(
                OPEN_INTEREST_HISTORY, params, instrument=instrument, day=day_of(from_us(end_ms * 1000 - 1))
            )
            page = parse_open_interest_history(body, instrument, ctx, ref)
            if page.height == 0:
                break
            frames.append(page)
            oldest_ms = to_us(page["ts"].min()) // 1000
            if oldest_ms >= end_ms:
                raise ctx.error(f"open-interest-history page for end={end_ms} did not go back in time")
            end_ms = oldest_ms
        return finish("open_interest", frames, start, end, drops, paged="backward")

    async def liquidations(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Liquidations of a SWAP or FUTURES contract in [start, end) (liquidation-orders of its
        instrument family, state=filled, newest first; a full page is followed by `after` = its
        oldest ms + 1, a short one by `after` = its oldest ms)."""
        start, end = as_utc(start), as_utc(end)
        named = contract(instrument)
        inst_type = {"perpetual": "SWAP", "future": "FUTURES"}.get(named.contract_type)
        if inst_type is None:
            raise ValueError(f"OKX {instrument}: liquidations exist for SWAP and FUTURES only")
        drops = self.dropped.of(instrument)
        start_us, after = to_us(start), ceil_ms(end)
        ref = await self.reference(instrument, start)
        frames: list[pl.DataFrame] = []
        while after * 1000 > start_us:
            params = {
                "instType": inst_type,
                "instFamily": f"{named.base}-{named.quote}",
                "state": "filled",
                "after": str(after),
                "limit": str(self.page_limit),
            }
            body, ctx = await self._get(
                LIQUIDATION_ORDERS, params, instrument=instrument, day=day_of(from_us(after * 1000 - 1))
            )
            page, times = liquidation_answer(body, instrument, ctx, ref, drops)
            if not times:
                break
            frames.append(page)
            oldest = min(times)
            if len(times) < self.page_limit:
                after = oldest
            elif oldest + 1 < after:  # the page may have cut its oldest millisecond: ask for it again
                after = oldest + 1
            else:
                raise ctx.error(
                    f"liquidation-orders page for after={after} holds {len(times)} liquidations "
                    "of one millisecond: more than a page of them cannot be paged by time"
                )
        return finish("liquidations", frames, start, end, drops, paged="backward")


__all__ = ["ERRORS", "LIMITS", "OkxClient"]
