"""A replay of data.binance.vision: daily and monthly archives (`.zip` + `.zip.CHECKSUM`) in the vendor's
layout, generated on request, deterministic per (seed, archive, generation).

It serves what the vendor's files hold and the faults archives have (re-published, corrupt, missing,
truncated, holed, malformed, throttled, cut: `ArchiveReplayConfig`, or `POST /_replay/<fault>?name=`).
Paths, formats, faults and use: docs/crypto-datasets.md, "The data.binance.vision replay".
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import hashlib
import io
import json
import re
import sys
import threading
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import polars as pl

from marketdata_assets.datasets.frames import BARS_SCHEMA, TRADES_SCHEMA, as_schema
from marketdata_assets.replay import (
    BackgroundServer,
    Reply,
    cli_parser,
    config_from_cli,
    json_reply,
    run_cli,
)
from marketdata_assets.replay.binance_dumps import _dump_rows, generate_trades
from marketdata_assets.replay.crypto import reference
from marketdata_assets.sources.binance_vision.dumps import (
    FUTURES_HEADER_SINCE,
    LIQUIDATION_FAMILY,
    MICROSECONDS_SINCE,
    interval_ms,
    liquidation_id,
)

VENUES = {"spot": "BINANCE", "um": "BINANCE_UM"}
_PATH = re.compile(
    r"^/data/(?P<market>spot|futures/um)/(?P<period>daily|monthly)/"
    r"(?P<family>trades|aggTrades|klines|liquidationSnapshot)/(?P<instrument>[A-Z0-9]+)/"
    r"(?:(?P<interval>\d+[smhdw])/)?(?P<name>[^/]+\.zip)(?P<checksum>\.CHECKSUM)?$"
)
_ZIP_TIME = (2025, 1, 1, 0, 0, 0)  # a fixed member time: the same rows always give the same bytes
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
LIQUIDATION_HEADER = (
    "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
    "last_fill_quantity,accumulated_fill_quantity"
)
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)


@dataclass
class ArchiveReplayConfig:
    seed: int = 11
    trades_per_day: int = 2000
    published_until: date | None = None  # None: yesterday (UTC)
    replaced: dict[str, int] = field(
        default_factory=dict
    )  # archive name -> generation (0: as first published)
    corrupt: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    truncated: dict[str, int] = field(default_factory=dict)  # daily archive name -> hours it holds
    holed: dict[str, int] = field(default_factory=dict)  # daily archive name -> rows left out mid-day
    malformed: dict[str, int] = field(default_factory=dict)  # name -> a CSV line without its last field
    slow_down: dict[str, int] = field(default_factory=dict)  # name -> 503 SlowDown answers still to give
    cut: dict[str, int] = field(default_factory=dict)  # name -> transfers still to cut halfway
    reference_seed: int = 0  # the crypto replay's universe the listing names (replay.crypto.reference)

    @classmethod
    def from_dict(cls, data: dict) -> ArchiveReplayConfig:
        data = dict(data)
        if data.get("published_until"):
            data["published_until"] = date.fromisoformat(data["published_until"])
        for name in ("corrupt", "missing"):
            data[name] = set(data.get(name) or ())
        return cls(**data)


@dataclass(frozen=True)
class Archive:
    market: str  # spot | um
    period: str  # daily | monthly
    family: str  # trades | aggTrades | klines | liquidationSnapshot
    instrument: str
    interval: str  # klines only
    day: date  # the day, or the month's first day
    name: str

    @property
    def venue(self) -> str:
        return VENUES[self.market]

    @property
    def path(self) -> str:
        market = "futures/um" if self.market == "um" else "spot"
        interval = f"{self.interval}/" if self.interval else ""
        return f"data/{market}/{self.period}/{self.family}/{self.instrument}/{interval}{self.name}"

    def lookup(self, table):
        """This archive's entry of a fault table (by path, else by name): a set's membership or a dict's
        value."""
        if isinstance(table, dict):
            return table.get(self.path, table.get(self.name))
        return self.path in table or self.name in table

    def days(self) -> list[date]:
        if self.period == "daily":
            return [self.day]
        return [
            self.day.replace(day=d)
            for d in range(1, calendar.monthrange(self.day.year, self.day.month)[1] + 1)
        ]


def parse_path(path: str) -> tuple[Archive, bool] | None:
    """(archive, is its CHECKSUM) of a URL path in the vendor's layout (the leading slash optional),
    None for any other path."""
    match = _PATH.match("/" + path.lstrip("/"))
    if not match or (match["family"] == "klines") != bool(match["interval"]):
        return None
    if match["family"] == LIQUIDATION_FAMILY and (match["market"], match["period"]) != (
        "futures/um",
        "daily",
    ):
        return None  # USD-M daily files only
    token = match["interval"] or match["family"]
    when = r"\d{4}-\d{2}-\d{2}" if match["period"] == "daily" else r"\d{4}-\d{2}"
    found = re.fullmatch(rf"{match['instrument']}-{re.escape(token)}-({when})\.zip", match["name"])
    if not found:
        return None
    try:
        day = date.fromisoformat(found[1] if match["period"] == "daily" else found[1] + "-01")
    except ValueError:
        return None
    market = "um" if match["market"] == "futures/um" else "spot"
    return Archive(
        market,
        match["period"],
        match["family"],
        match["instrument"],
        match["interval"] or "",
        day,
        match["name"],
    ), bool(match["checksum"])


# --------------------------------------------------------------------------------------------
# What an archive holds
# --------------------------------------------------------------------------------------------


def day_trades(
    archive: Archive, day: date, seed: int, trades_per_day: int, generation: int = 0
) -> pl.DataFrame:
    """The normalized trades of one day of an archive's instrument (a generation > 0: re-published,
    other rows). About two in five trades are further fills of the taker order before them (its
    time, price and side), so aggTrades aggregate something."""
    trades = generate_trades(
        archive.instrument,
        day,
        trades_per_day + 7 * generation,
        seed=seed * 1000 + generation,
        market=archive.market,
        venue=archive.venue,
    )
    fill = ((pl.col("seq") * 2654435761) % 97 < 40) & (pl.int_range(pl.len()) > 0)
    order = (~fill).cum_sum()
    return trades.with_columns(
        *(pl.col(c).first().over(order) for c in ("ts", "price", "side"))
    ).with_columns((pl.col("price") * pl.col("quantity")).round(8).alias("amount"))


def agg_trades(trades: pl.DataFrame, day: date) -> pl.DataFrame:
    """Aggregate trades: the day's consecutive trades of one price and side (the normalized frame,
    `seq` the aggregate id, plus first/last trade ids)."""
    first_agg = 500_000_000 + (day - date(2017, 7, 14)).days * 5_000_000
    run = (
        (pl.col("price") != pl.col("price").shift()) | (pl.col("side") != pl.col("side").shift())
    ).fill_null(True)
    grouped = (
        trades.with_columns(run.cum_sum().alias("run"))
        .group_by("run", maintain_order=True)
        .agg(
            pl.col("ts").first(),
            pl.col("venue").first(),
            pl.col("instrument").first(),
            pl.col("price").first(),
            pl.col("quantity").sum().round(8),
            pl.col("side").first(),
            pl.col("seq").first().alias("first_trade_id"),
            pl.col("seq").last().alias("last_trade_id"),
        )
    )
    agg_id = pl.int_range(first_agg, first_agg + grouped.height, dtype=pl.Int64)
    return grouped.with_columns(agg_id.alias("seq")).select(
        "ts",
        "venue",
        "instrument",
        pl.col("seq").cast(pl.Utf8).alias("trade_id"),
        "price",
        "quantity",
        (pl.col("price") * pl.col("quantity")).alias("amount"),
        "side",
        "seq",
        "first_trade_id",
        "last_trade_id",
    )


def klines(trades: pl.DataFrame, interval: str) -> pl.DataFrame:
    """The trades' OHLCV per `interval` (bars with no trade left out), with the kline file's columns."""
    span_us = interval_ms(interval) * 1000
    buy = pl.col("side") == "buy"
    bars = (
        trades.with_columns((pl.col("ts").dt.epoch("us") // span_us * span_us).alias("open_us"))
        .group_by("open_us", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("quantity").sum().round(8).alias("volume"),
            pl.col("amount").sum().round(8).alias("quote_volume"),
            pl.len().cast(pl.Int64).alias("count"),
            pl.col("quantity").filter(buy).sum().round(8).alias("taker_buy_volume"),
            pl.col("amount").filter(buy).sum().round(8).alias("taker_buy_quote_volume"),
        )
    )
    return bars.with_columns((pl.col("open_us") + span_us - 1).alias("close_us")).sort("open_us")


def liquidations(trades: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The day's liquidation orders in the file's columns (+ `ts`): the trades a hash of the seed and
    trade id picks (about one in 11), the latest of each second (the forceOrder snapshot), each
    filled whole at the trade's price, its limit price 0.5% worse, one in three in two fills."""
    picked = trades.filter((pl.col("seq") * 40503 + seed * 7919) % 101 < 9)
    second = pl.col("ts").dt.epoch("ms") // 1000
    latest = picked.filter(pl.col("seq") == pl.col("seq").max().over(second))
    sell = pl.col("side") == "sell"
    return latest.select(
        "ts",
        pl.col("ts").dt.epoch("ms").alias("time"),
        pl.col("side").str.to_uppercase().alias("side"),
        pl.lit("LIMIT").alias("order_type"),
        pl.lit("IOC").alias("time_in_force"),
        pl.col("quantity").alias("original_quantity"),
        (pl.col("price") * pl.when(sell).then(0.995).otherwise(1.005)).round(2).alias("price"),
        pl.col("price").alias("average_price"),
        pl.lit("FILLED").alias("order_status"),
        pl.when(pl.col("seq") % 3 == 0)
        .then((pl.col("quantity") / 2).round(5))
        .otherwise(pl.col("quantity"))
        .alias("last_fill_quantity"),
        pl.col("quantity").alias("accumulated_fill_quantity"),
    )


def _time(column: str, unit: str) -> pl.Expr:
    return pl.col(column) if unit == "us" else pl.col(column) // 1000


def csv_bytes(archive: Archive, frames: list[pl.DataFrame]) -> bytes:
    """The archive's CSV as the vendor writes it (per day: the unit and header of its market)."""
    header = archive.market != "spot" and archive.day >= FUTURES_HEADER_SINCE
    unit = "us" if archive.market == "spot" and archive.day >= MICROSECONDS_SINCE else "ms"
    precision = 8 if archive.market == "spot" else None
    # the liquidation archives as Binance publishes them: a header, and every line twice (reported in
    # https://github.com/binance/binance-public-data/issues/259)
    if archive.family == LIQUIDATION_FAMILY:
        rows = pl.concat(frames).drop("ts")
        rows = rows.select(pl.all().repeat_by(2).explode())
        return (LIQUIDATION_HEADER + "\n").encode() + _csv(rows, None)
    if archive.family == "trades":
        rows = pl.concat([_dump_rows(f, archive.market, unit) for f in frames])
    elif archive.family == "aggTrades":
        rows = pl.concat(frames).select(
            "seq",
            "price",
            "quantity",
            "first_trade_id",
            "last_trade_id",
            _time("ts_us", unit).alias("time"),
            pl.when(pl.col("side") == "sell").then(pl.lit("True")).otherwise(pl.lit("False")).alias("maker"),
            *([pl.lit("True").alias("best")] if archive.market == "spot" else []),
        )
    else:
        rows = pl.concat(frames).select(
            _time("open_us", unit),
            "open",
            "high",
            "low",
            "close",
            "volume",
            _time("close_us", unit),
            "quote_volume",
            "count",
            "taker_buy_volume",
            "taker_buy_quote_volume",
            pl.lit("0").alias("ignore"),
        )
    text = _csv(rows, precision)
    if archive.market != "spot":
        text = text.replace(b",True", b",true").replace(b",False", b",false")
    if header and archive.family != "trades":
        text = ((AGG_HEADER if archive.family == "aggTrades" else KLINE_HEADER) + "\n").encode() + text
    elif header:
        text = b"id,price,qty,quote_qty,time,is_buyer_maker\n" + text
    return text


def _csv(rows: pl.DataFrame, precision: int | None) -> bytes:
    buffer = io.BytesIO()
    rows.write_csv(buffer, include_header=False, float_precision=precision)
    return buffer.getvalue()


def _rolled_up(name: str, prefix: str, delimiter: str) -> str:
    """A key as S3 lists it under `prefix`: up to and with the first `delimiter` after the prefix (a
    CommonPrefix), or whole."""
    at = name.find(delimiter, len(prefix)) if delimiter else -1
    return name if at < 0 else name[: at + len(delimiter)]


def zipped(member: str, data: bytes) -> bytes:
    """`data` as the zip of one member, deflated at level 1 (a ZipInfo takes the level from `writestr`, not
    from the ZipFile: it was deflated at zlib's default, 6, and the replay spent half its time there)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo(member, date_time=_ZIP_TIME), data, zipfile.ZIP_DEFLATED, compresslevel=1
        )
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

NOT_FOUND = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does '
    "not exist.</Message><Key>{key}</Key><RequestId>{request}</RequestId><HostId>replay</HostId></Error>"
)


LISTING_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
BUCKET_PATHS = ("/", "/data.binance.vision", "/data.binance.vision/")
FAMILIES = {
    "spot": ("aggTrades", "klines", "trades"),
    "um": ("aggTrades", "klines", LIQUIDATION_FAMILY, "trades"),
}
KLINE_INTERVALS = ("12h", "15m", "1d", "1h", "1m", "1s", "2h", "30m", "3m", "4h", "5m", "6h", "8h")


def entry_xml(key: str, modified: datetime, data: bytes) -> str:
    return (
        f"<Contents><Key>{escape(key)}</Key><LastModified>{modified.strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
        f"</LastModified><ETag>&quot;{hashlib.md5(data).hexdigest()}&quot;</ETag><Size>{len(data)}</Size>"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
    )


SLOW_DOWN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request '
    "rate.</Message><RequestId>replay</RequestId><HostId>replay</HostId></Error>"
)


class BinanceArchiveReplayServer(BackgroundServer):
    """The replay; a context manager serving in a background thread (`base_url`)."""

    thread_name = "binance-archive-replay"

    def __init__(self, config: ArchiveReplayConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ArchiveReplayConfig()
        self.lock = threading.RLock()
        self.cache: dict[tuple[str, int], tuple[bytes, str]] = {}  # (path, generation) -> (zip, sha256)
        self.log: deque[tuple[str, int]] = deque(maxlen=100_000)  # (path, status)
        self.listen(host, port, self.dispatch, name="binance-archive-replay", methods=("GET", "HEAD", "POST"))

    def banner(self) -> str:
        """The CLI's first line of output."""
        return (
            f"data.binance.vision replay on {self.base_url}: "
            f"{json.dumps(dataclasses.asdict(self.config), default=str)}"
        )

    # ---- control ---------------------------------------------------------------------------

    def replace(self, name: str) -> int:
        """Re-publish an archive (its name, or path without the leading slash): its next generation
        (other rows, another digest)."""
        with self.lock:
            self.config.replaced[name] = self.config.replaced.get(name, 0) + 1
            return self.config.replaced[name]

    def requests(self, suffix: str = "") -> list[tuple[str, int]]:
        with self.lock:
            return [r for r in self.log if r[0].endswith(suffix)]

    def published_until(self) -> date:
        return self.config.published_until or (datetime.now(UTC).date() - timedelta(days=1))

    def universe(self) -> reference.Universe:
        """The crypto replay's instruments as of the day after the last published one (its lifecycle:
        a symbol listed 3 days before, one delisted 2 days before)."""
        day = self.published_until() + timedelta(days=1)
        return reference.universe(
            self.config.reference_seed, reference.EPOCH_US + (day - date(2017, 1, 1)).days * reference.DAY_US
        )

    def life(self, market: str, instrument: str) -> tuple[int, int | None] | None:
        """(listed, ended) µs of a symbol the universe holds, None for another (served on every day)."""
        found = self.universe().get(VENUES[market], instrument)
        return (found.listed_us, found.ends_us) if found is not None else None

    # ---- content ---------------------------------------------------------------------------

    def frames(self, archive: Archive, generation: int = 0) -> list[pl.DataFrame]:
        """The archive's rows per day, normalized (+ the kline and aggTrades file columns): the
        ground truth a correct loader stores."""
        out = []
        for day in archive.days():  # a monthly archive: its days as first published (unless it is replaced)
            trades = day_trades(archive, day, self.config.seed, self.config.trades_per_day, generation)
            life = self.life(archive.market, archive.instrument)
            if life is not None:  # a listing or delisting day: the hours the symbol traded
                ts_us = pl.col("ts").dt.epoch("us")
                trades = trades.filter(
                    (ts_us >= life[0]) & (ts_us < (life[1] if life[1] is not None else 1 << 62))
                )
            hours = archive.lookup(self.config.truncated) if archive.period == "daily" else None
            if hours is not None:
                trades = trades.filter(
                    pl.col("ts") < datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hours)
                )
            if archive.family == "aggTrades":
                trades = agg_trades(trades, day).with_columns(pl.col("ts").dt.epoch("us").alias("ts_us"))
            elif archive.family == "klines":
                trades = klines(trades, archive.interval)
            elif archive.family == LIQUIDATION_FAMILY:
                trades = liquidations(trades, self.config.seed)
            holes = archive.lookup(self.config.holed) if archive.period == "daily" else None
            if (
                holes
            ):  # published with its checksum, ids missing all the same (it happens on data.binance.vision)
                middle = trades.height // 2
                trades = pl.concat([trades.head(middle), trades.slice(middle + holes)])
            out.append(trades)
        return out

    def content(self, archive: Archive) -> tuple[bytes, str]:
        """(zip bytes, sha256) of the archive's current generation (cached; made outside the lock, so
        requests of different archives generate in parallel: the same bytes whoever makes them)."""
        with self.lock:
            generation = archive.lookup(self.config.replaced) or 0
            cache_key = (archive.path, generation)
            if cache_key in self.cache:
                return self.cache[cache_key]
        text = csv_bytes(archive, self.frames(archive, generation))
        if (line := archive.lookup(self.config.malformed)) is not None:
            lines = text.split(b"\n")
            lines[line] = lines[line].rsplit(b",", 1)[0]
            text = b"\n".join(lines)
        data = zipped(archive.name.removesuffix(".zip") + ".csv", text)
        with self.lock:
            return self.cache.setdefault(cache_key, (data, hashlib.sha256(data).hexdigest()))

    def checksum(self, archive: Archive) -> str:
        return f"{self.content(archive)[1]}  {archive.name}\n"

    def truth(self, path: str) -> pl.DataFrame:
        """The normalized rows of the archive at `path` (current generation), as a loader stores them."""
        archive, _ = parse_path(path)
        frame = pl.concat(self.frames(archive, archive.lookup(self.config.replaced) or 0))
        if archive.family == LIQUIDATION_FAMILY:
            ids = [
                liquidation_id(t, s.lower(), q, p)
                for t, s, q, p in zip(
                    frame["ts"].dt.epoch("us"),
                    frame["side"],
                    frame["accumulated_fill_quantity"],
                    frame["average_price"],
                )
            ]
            return frame.select(
                "ts",
                pl.lit(archive.venue).alias("venue"),
                pl.lit(archive.instrument).alias("instrument"),
                pl.Series("liquidation_id", ids, dtype=pl.Utf8),
                pl.col("side").str.to_lowercase(),
                pl.col("average_price").alias("price"),
                pl.col("accumulated_fill_quantity").alias("quantity"),
                (pl.col("average_price") * pl.col("accumulated_fill_quantity")).alias("amount"),
                pl.col("price").alias("order_price"),
            ).sort("ts")
        if archive.family != "klines":
            return as_schema(frame, TRADES_SCHEMA)  # a column the archive lacks: null, as stored
        return frame.select(
            pl.col("open_us").cast(BARS_SCHEMA["ts"]).alias("ts"),
            pl.lit(archive.venue).alias("venue"),
            pl.lit(archive.instrument).alias("instrument"),
            "open",
            "high",
            "low",
            "close",
            "volume",
            pl.col("quote_volume").alias("amount"),
            pl.col("count").alias("trades"),
        )

    def is_published(self, archive: Archive) -> bool:
        """Published by now, not missing, and (a symbol of the universe) inside the days it traded."""
        days = archive.days()
        if days[-1] > self.published_until() or archive.lookup(self.config.missing):
            return False
        life = self.life(archive.market, archive.instrument)
        if life is None:
            return True
        first, last = reference.to_date(life[0]), reference.to_date(life[1] - 1) if life[1] else days[-1]
        return first <= days[0] and days[-1] <= last

    # ---- requests --------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers, body: bytes) -> Reply:
        url = urlsplit(target)
        if url.path.startswith("/_replay/"):
            return self.control(method, url.path, dict(parse_qsl(url.query)))
        reply = (
            self.listing(dict(parse_qsl(url.query, keep_blank_values=True)))
            if url.path in BUCKET_PATHS
            else self.serve_path(url.path)
        )
        with self.lock:
            self.log.append((url.path, reply.status))
        return reply

    def serve_path(self, path: str) -> Reply:
        found = parse_path(path)
        if found is None or not self.is_published(found[0]):
            return self.not_found(path)
        archive, is_checksum = found
        s3 = {
            "Server": "AmazonS3",
            "X-Cache": "Miss from cloudfront",
            "Last-Modified": format_datetime(
                datetime.combine(archive.days()[-1] + timedelta(days=1), datetime.min.time(), UTC),
                usegmt=True,
            ),
        }
        if is_checksum:
            return Reply(200, self.checksum(archive).encode(), {"Content-Type": "binary/octet-stream", **s3})
        for faults, reply in (
            (
                self.config.slow_down,
                Reply(
                    503,
                    SLOW_DOWN.encode(),
                    {
                        "Content-Type": "application/xml",
                        "Server": "AmazonS3",
                        "X-Cache": "Error from cloudfront",
                    },
                ),
            ),
            (self.config.cut, None),
        ):
            with self.lock:
                name = archive.path if archive.path in faults else archive.name
                if faults.get(name, 0) > 0:
                    faults[name] -= 1
                    if reply is not None:
                        return reply
                    data, _ = self.content(archive)
                    return Reply(200, data, {"Content-Type": "application/zip"}, disconnect=True)
        data, _ = self.content(archive)
        if archive.lookup(self.config.corrupt):
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return Reply(
            200, data, {"Content-Type": "application/zip", "ETag": f'"{hashlib.md5(data).hexdigest()}"', **s3}
        )

    # ---- the bucket listing ------------------------------------------------------------------

    def children(self, folder: str, after: str = "", limit: int | None = None) -> list[str]:
        """The folders (ending in /) and files directly under `folder` (a prefix ending in /); a symbol's
        daily files from the first after `after`, at least `limit` of them when it is given."""
        parts = folder.strip("/").split("/") if folder else []
        if len(parts) <= 1:
            return ["data/"] if not parts else ["data/futures/", "data/spot/"]
        market = "um" if parts[1] == "futures" else "spot"
        depth = 3 if market == "um" else 2  # the parts before the period
        if parts[1] == "futures" and len(parts) == 2:
            return ["data/futures/um/"]
        if len(parts) == depth:
            return [f"{folder}daily/", f"{folder}monthly/"]
        period, rest = parts[depth], parts[depth + 1 :]
        if not rest:
            families = [f for f in FAMILIES[market] if f != LIQUIDATION_FAMILY or period == "daily"]
            return [f"{folder}{f}/" for f in families]
        if len(rest) == 1:
            until = (
                reference.EPOCH_US + ((self.published_until() - date(2017, 1, 1)).days + 1) * reference.DAY_US
            )
            return sorted(f"{folder}{i.name}/" for i in self.universe().ever(VENUES[market], until))
        if rest[0] == "klines" and len(rest) == 2:
            return [f"{folder}{interval}/" for interval in KLINE_INTERVALS]
        return self.files(folder, market, period, rest, after, limit)

    def files(
        self,
        folder: str,
        market: str,
        period: str,
        rest: list[str],
        after: str = "",
        limit: int | None = None,
    ) -> list[str]:
        """The archives (and their CHECKSUMs) of one symbol folder, the days or months it traded (daily:
        from the day of `after`, `limit` days at most; a listing page needs no more)."""
        family, instrument, interval = rest[0], rest[1], rest[2] if len(rest) > 2 else ""
        life = self.life(market, instrument)
        if life is None:
            return []
        first, last = reference.to_date(life[0]), self.published_until()
        if life[1] is not None:
            last = min(last, reference.to_date(life[1] - 1))
        token, out = interval or family, []
        if period == "daily":
            marked = (
                re.search(r"(\d{4}-\d{2}-\d{2})\.zip", after[len(folder) :])
                if after.startswith(folder)
                else None
            )
            first = max(first, date.fromisoformat(marked.group(1))) if marked else first
            count = (last - first).days + 1 if limit is None else min((last - first).days + 1, limit + 1)
            days = [first + timedelta(days=k) for k in range(count)]
            names = [f"{instrument}-{token}-{d.isoformat()}.zip" for d in days]
        else:  # the months it traded whole
            month, names = first.replace(day=1), []
            while month <= last:
                end = month.replace(day=calendar.monthrange(month.year, month.month)[1])
                if first <= month and end <= last:
                    names.append(f"{instrument}-{token}-{month.strftime('%Y-%m')}.zip")
                month = end + timedelta(days=1)
        for name in names:
            out += [folder + name, folder + name + ".CHECKSUM"]
        return sorted(out)

    def listing(self, query: dict) -> Reply:
        """S3's ListObjects (the site's index pages read it): `prefix`, `delimiter` ("/", or another: the
        keys with it after the prefix rolled up to a CommonPrefix each, as S3 does), `marker`, `max-keys`
        (1,000 at most); folders as CommonPrefixes, archives with their size and ETag."""
        prefix, marker = query.get("prefix", ""), query.get("marker", "")
        delimiter = query.get("delimiter", "/")
        limit = max(1, min(1000, int(query.get("max-keys") or 1000)))
        folder = prefix[: prefix.rfind("/") + 1]
        names = [
            _rolled_up(n, prefix, delimiter)
            for n in self.children(folder, marker, limit if prefix == folder else None)
            if n.startswith(prefix)
        ]
        names = [n for n in dict.fromkeys(names) if n > marker]
        page, truncated = names[:limit], len(names) > limit
        body = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{LISTING_NS}">'
            f"<Name>data.binance.vision</Name><Prefix>{escape(prefix)}</Prefix><Marker>{escape(marker)}</Marker>"
            + (f"<NextMarker>{escape(page[-1])}</NextMarker>" if truncated else "")
            + f"<MaxKeys>{limit}</MaxKeys><Delimiter>{escape(delimiter)}</Delimiter>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        ]
        for name in page:
            if name.endswith(("/", delimiter)):
                body.append(f"<CommonPrefixes><Prefix>{escape(name)}</Prefix></CommonPrefixes>")
                continue
            archive, is_checksum = parse_path(name)
            modified = datetime.combine(archive.days()[-1] + timedelta(days=1), datetime.min.time(), UTC)
            data = self.checksum(archive).encode() if is_checksum else self.content(archive)[0]
            body.append(entry_xml(name, modified, data))
        body.append("</ListBucketResult>")
        return Reply(200, "".join(body).encode(), {"Content-Type": "application/xml", "Server": "AmazonS3"})

    @staticmethod
    def not_found(path: str) -> Reply:
        body = NOT_FOUND.format(
            key=path.lstrip("/"), request=hashlib.sha1(path.encode()).hexdigest()[:16].upper()
        )
        return Reply(
            404,
            body.encode(),
            {"Content-Type": "application/xml", "Server": "AmazonS3", "X-Cache": "Error from cloudfront"},
        )

    def control(self, method: str, path: str, query: dict) -> Reply:
        name = query.get("name", "")
        with self.lock:
            if path == "/_replay/state" and method == "GET":
                return json_reply(
                    200,
                    {
                        "published_until": self.published_until().isoformat(),
                        "replaced": self.config.replaced,
                        "corrupt": sorted(self.config.corrupt),
                        "missing": sorted(self.config.missing),
                        "truncated": self.config.truncated,
                        "holed": self.config.holed,
                        "malformed": self.config.malformed,
                        "requests": len(self.log),
                    },
                )
            if method == "POST" and name and path == "/_replay/replace":
                return json_reply(200, {"name": name, "generation": self.replace(name)})
            if method == "POST" and name and path in ("/_replay/corrupt", "/_replay/missing"):
                getattr(self.config, path.rsplit("/", 1)[1]).add(name)
                return json_reply(200, {"name": name})
        return json_reply(
            404, {"detail": "unknown control endpoint (state; POST replace|corrupt|missing?name=)"}
        )


def demo_config() -> ArchiveReplayConfig:
    """What `make run` serves: every day up to yesterday, with one archive of each fault in the first
    days of the shipped config's start (2025-01-01): the spot trades of 2025-01-03 missing, the spot
    aggTrades of 2025-01-04 corrupt (the UI shows both failures when those partitions run; `POST
    /_replay/replace?name=` re-publishes an archive for the re-check to find)."""
    return ArchiveReplayConfig(
        seed=11,
        trades_per_day=5000,
        missing={"data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-03.zip"},
        corrupt={"data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-01-04.zip"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        "marketdata_assets.replay.binance_archive",
        "Replay of data.binance.vision's daily and monthly archives (zip + CHECKSUM).",
        port=8767,
        config="ArchiveReplayConfig fields",
    )
    parser.add_argument("--trades-per-day", type=int)
    return run_cli(argv, parser, server_from_args, verbose=None)


def server_from_args(args: argparse.Namespace) -> BinanceArchiveReplayServer:
    config = config_from_cli(args, ArchiveReplayConfig.from_dict, ("seed", "trades_per_day"))
    return BinanceArchiveReplayServer(config, host=args.host, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
