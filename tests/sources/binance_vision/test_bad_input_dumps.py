"""Bad Binance dump files, one table (issue 15): each file goes through the strict reader
(`read_dump` / `DumpReader` / `has_rows`) and through the landing/load path (`landing_dumps` +
`dump_feed` run by the engine), once with the engine's own CSV reader (ClickHouse file()) and once
with the Polars reader, all the bad files beside good ones in one landing directory: each bad file
fails its own slice with a reason naming the file, every good one loads.

An expected outcome is an error fragment, or a documented acceptance (the rows read and stored),
or, for files whose name is not one this domain loads, the landing's reason for passing it over.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.core.landing_files import LinkRefused
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.dumps import dump_feed
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.sources.binance_vision.dumps import has_rows, landing_dumps, read_dump

DAY = date(2025, 1, 15)
US = 1736899200000000  # 2025-01-15 00:00 UTC in microseconds (spot dumps from 2025)
MS = US // 1000


def trade(
    i: int,
    price="94350.01000000",
    qty="0.00017000",
    quote="16.03950170",
    t=None,
    maker="True",
    best="True",
    ms=False,
) -> str:
    t = t if t is not None else (MS + i if ms else US + i * 1000 + 7)
    return f"{4433425390 + i},{price},{qty},{quote},{t},{maker},{best}"


def trades(n=3, **kw) -> str:
    return "".join(trade(i, **kw) + "\n" for i in range(n))


def kline(
    i: int,
    o="96534.05",
    h="96566.00",
    lo="96520.01",
    c="96529.99",
    v="11.29458000",
    span_us=59_999_999,
    t=None,
) -> str:
    t = t if t is not None else US + i * 60_000_000
    return f"{t},{o},{h},{lo},{c},{v},{t + span_us},1090441.36424660,3179,5.18733000,500827.42148870,0"


def klines(n=3, **kw) -> str:
    return "".join(kline(i, **kw) + "\n" for i in range(n))


def zipped(*members: tuple[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members:
            archive.writestr(name, text)
    return buffer.getvalue()


@dataclass(frozen=True)
class DumpCase:
    """A file `name` (under the landing directory) holding `content`. `read`: None = read_dump
    accepts it (`rows` rows), else a fragment of its SourceDataError. `load`: None = the slice loads
    `rows` rows, else a fragment of the slice's error (both readers; `engine_load` when the engine's
    file() reader words it differently). `ignored`: the landing passes the file over, for this reason."""

    name: str
    content: bytes
    read: str | None = None
    rows: int = 3
    load: str | None = None
    engine_load: str | None = None
    ignored: str | None = None
    dataset: str = "trades"

    @property
    def instrument(self) -> str:
        return self.name.split("/")[-1].split("-")[0]


def case(inst: str, content: str | bytes, *, zip_=False, family="trades", **kw) -> DumpCase:
    token = "1m" if family == "klines" else "trades"
    base = f"{inst}-{token}-{DAY.isoformat()}"
    data = content.encode() if isinstance(content, str) else content
    if zip_ and not isinstance(content, bytes):
        data = zipped((f"{base}.csv", data))
    return DumpCase(
        f"{base}.{'zip' if zip_ else 'csv'}",
        data,
        dataset="bars_1m" if family == "klines" else "trades",
        **kw,
    )


NO_ROWS = "the dump holds no rows"
SHORT = "a row lacks one of id, price, qty, quote_qty, time, is_buyer_maker"
NOT_PARSED = "do not parse"

CASES = [
    # ---- empty files: bad input (never loaded over a stored day) --------------------------
    case("EMPTYA", b"", rows=0, load=NO_ROWS),
    case("HEADERA", "id,price,qty,quote_qty,time,is_buyer_maker\n", rows=0, load=NO_ROWS),
    case("HEADERZ", "id,price,qty,quote_qty,time,is_buyer_maker\n", zip_=True, rows=0, load=NO_ROWS),
    case("BLANKA", "\n \r\n\n", rows=0, load=NO_ROWS),
    # ---- archives --------------------------------------------------------------------------
    case("NOMEMBER", zipped(), zip_=True, read="no .csv inside the zip", load="no .csv inside the zip"),
    case(
        "TXTMEMBER",
        zipped((f"TXTMEMBER-trades-{DAY}.txt", trades())),
        zip_=True,
        read="no .csv inside the zip",
        load="no .csv inside the zip",
    ),
    case(
        "TWOMEMBERS",
        zipped((f"TWOMEMBERS-trades-{DAY}.csv", trades()), (f"TWOMEMBERS-trades-{DAY}-2.csv", trades())),
        zip_=True,
        read="2 members",
        load="2 members",
    ),
    case(
        "WRONGMEMBER",
        zipped((f"ETHUSDT-trades-{DAY}.csv", trades())),
        zip_=True,
        read=f"holds 'ETHUSDT-trades-{DAY}.csv', not 'WRONGMEMBER-trades-{DAY}.csv'",
        load="not 'WRONGMEMBER-trades",
    ),
    case(
        "CORRUPTZIP",
        b"PK\x03\x04 this is not a zip archive at all" * 20,
        zip_=True,
        read="not a readable zip",
        load="not a readable zip",
    ),
    case(
        "CUTZIP",
        zipped((f"CUTZIP-trades-{DAY}.csv", trades(2000)))[:900],
        zip_=True,
        read="not a readable zip",
        load="not a readable zip",
    ),
    # ---- columns and values ------------------------------------------------------------------
    case(
        "SHORTROW",
        trades(2) + trade(9).rsplit(",", 2)[0] + "\n",
        read="have no is_buyer_maker",
        load="have no is_buyer_maker",
        engine_load=SHORT,
    ),
    case(
        "SHORTZIP",
        trades(2) + trade(9).rsplit(",", 2)[0] + "\n",
        zip_=True,
        read="have no is_buyer_maker",
        load="have no is_buyer_maker",
    ),
    case("NOBESTMATCH", trades(2) + trade(9).rsplit(",", 1)[0] + "\n"),  # not stored: read, documented
    case(
        "EXTRAFIELD",
        trades(2) + trade(9) + ",X\n",
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="a row has more columns than the layout",
    ),
    case(
        "EIGHTCOLS",
        "".join(trade(i) + ",0\n" for i in range(3)),
        read="trades dump with 8 columns",
        load="trades dump with 8 columns",
        engine_load="a row has more columns than the layout",
    ),
    case(
        "TEXTPRICE",
        trades(2) + trade(9, price="94350.O1") + "\n",
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="the file does not load",
    ),
    case(
        "NEGQTY",
        trades(2) + trade(9, qty="-0.00017000") + "\n",
        read="the qty is not positive",
        load="the qty is not positive",
        engine_load="a row has a qty that is not positive",
    ),
    case(
        "ZEROPRICE",
        trades(2) + trade(9, price="0.00000000") + "\n",
        read="the price is not positive",
        load="the price is not positive",
        engine_load="a row has a price that is not positive",
    ),
    case(
        "NANPRICE",
        trades(2) + trade(9, price="NaN") + "\n",
        read="the price is not positive",
        load="the price is not positive",
        engine_load="a row has a price that is not positive",
    ),
    case(
        "MAKERYES",
        trades(2) + trade(9, maker="yes") + "\n",
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="is_buyer_maker is not true/false",
    ),
    case(
        "MAKERONE",
        trades(2) + trade(9, maker="1") + "\n",
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="is_buyer_maker is not true/false",
    ),
    case(
        "HUGEID",
        "99999999999999999999" + trades(1)[10:],
        rows=1,
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="a row has an id out of the Int64 range",
    ),
    case("BESTMATCHODD", trades(2) + trade(9, best="Maybe") + "\n"),  # not stored, not checked: documented
    case(
        "HEADERMID",
        trades(2) + "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + trade(5) + "\n",
        read=NOT_PARSED,
        load=NOT_PARSED,
        engine_load="the file does not load",
    ),
    # ---- times ---------------------------------------------------------------------------------
    case(
        "SECONDS",
        trades(2) + trade(9, t=US // 1_000_000) + "\n",
        read="neither milliseconds nor microseconds",
        load="neither milliseconds nor microseconds",
        engine_load="outside the file's day",
    ),
    case("MICROS", trades(3)),  # 2025 spot: microseconds
    case("MILLIS", trades(3, ms=True)),  # milliseconds in 2025: read by magnitude
    case("MIXEDUNITS", trades(2) + trade(5, ms=True) + "\n"),  # per row
    case("NEXTDAY", trades(2) + trade(9, t=US + 86_400_000_000 + 5) + "\n", load="outside the"),
    # ---- lines ---------------------------------------------------------------------------------
    case(
        "DUPID",
        trades(2) + trade(1) + "\n",
        read="id 4433425391 appears 2 times",
        load="appears 2 times",
        engine_load="(trade_id 4433425391 appears 2 times)",
    ),
    case("UNSORTED", trade(2) + "\n" + trade(0) + "\n" + trade(1) + "\n"),  # stored sorted: documented
    case("CRLF", trades(3).replace("\n", "\r\n")),
    case("TRAILBLANK", trades(3) + "\n", read="have no id", load="have no id", engine_load=SHORT),
    case(
        "MIDBLANK",
        trade(0) + "\n\n" + trade(1) + "\n" + trade(2) + "\n",
        read="have no id",
        load="have no id",
        engine_load=SHORT,
    ),
    case("NOFINALEOL", trades(3).rstrip("\n")),
    case("BOM", "\ufeff" + trades(3)),
    case("QUOTED", "".join('"' + trade(i).replace(",", '","') + '"\n' for i in range(3))),
    case("SPOTHEADER", "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + trades(3)),
    # ---- klines --------------------------------------------------------------------------------
    case("KGOOD", klines(3), family="klines"),
    case(
        "KONEHOUR",
        klines(3, span_us=3_599_999_999),
        family="klines",
        read="does not span 1m",
        load="does not span 1m",
        engine_load="a kline does not span 1m",
    ),
    case(
        "KHIGHLOW",
        klines(2) + kline(7, h="96500.00") + "\n",
        family="klines",
        read="low <= open, close <= high",
        load="low <= open, close <= high",
        engine_load="a kline fails low <= open, close <= high",
    ),
    case(
        "KNEGVOL",
        klines(2) + kline(7, v="-1") + "\n",
        family="klines",
        read="negative or infinite",
        load="negative or infinite",
        engine_load="a kline has a negative or infinite volume or count",
    ),
    case(
        "KDUP",
        klines(2) + kline(1) + "\n",
        family="klines",
        read="open_time 1736899260000000 appears 2 times",
        load="appears 2 times",
        engine_load="repeat a ts of the file",
    ),
    case("KZIP", klines(3), family="klines", zip_=True),
]

IGNORED = [  # files the landing passes over (not loaded, and why)
    DumpCase(
        f"btcusdt_trades_{DAY:%Y%m%d}.csv",
        trades().encode(),
        ignored="is not a data.binance.vision file name",
    ),
    DumpCase(f"NAMEA-bookTicker-{DAY}.zip", zipped(), ignored="is not a data.binance.vision file name"),
    DumpCase(f"NAMEB-trades-{DAY}.csv.gz", b"\x1f\x8b", ignored="is not a .csv or .zip dump file"),
    DumpCase(f"NAMEC-trades-{DAY}.zip.CHECKSUM", b"abc  NAMEC-trades.zip\n"),  # a companion: not listed
    DumpCase("NAMED-trades-2025-01.zip", zipped(), ignored="a monthly trades dump"),
    DumpCase(f"NAMEE-aggTrades-{DAY}.zip", zipped(), ignored="a daily aggTrades dump"),
    DumpCase(f"NAMEF-1h-{DAY}.zip", zipped(), ignored="a daily 1h dump"),
    DumpCase(f"futures/um/daily/trades/NAMEG/NAMEG-trades-{DAY}.zip", zipped(), ignored="a futures dump"),
    DumpCase(f"NAMEH-trades-{DAY}.CSV", trades().encode(), ignored="is not a .csv or .zip dump file"),
]
ALL = CASES + IGNORED


def land(root: Path, cases) -> None:
    for item in cases:
        path = root / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.content)


# ---- the strict reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("item", CASES, ids=lambda c: c.instrument)
def test_the_strict_reader(tmp_path, item):
    land(tmp_path, [item])
    path = tmp_path / item.name
    if item.read is None:
        frame = read_dump(path)
        assert frame.height == item.rows and set(frame["instrument"]) <= {item.instrument}
        assert frame["ts"].dt.date().unique().to_list() in ([], [DAY]) or item.instrument == "NEXTDAY"
        assert has_rows(path) == bool(item.rows)
        return
    with pytest.raises(SourceDataError) as error:
        read_dump(path)
    assert item.read in str(error.value)
    assert (
        error.value.instrument == item.instrument and error.value.day == DAY and item.name in str(error.value)
    )


def test_microseconds_and_milliseconds_are_the_same_instants(tmp_path):
    """Spot dumps switched to microseconds on 2025-01-01 (data.binance.vision's README); both units
    are read by magnitude, row by row, to the same instants."""
    land(tmp_path, [c for c in CASES if c.instrument in ("MICROS", "MILLIS", "UNSORTED")])
    micros = read_dump(tmp_path / f"MICROS-trades-{DAY}.csv")["ts"].to_list()
    millis = read_dump(tmp_path / f"MILLIS-trades-{DAY}.csv")["ts"].to_list()
    assert [t.microsecond for t in micros] == [7, 1007, 2007] and [t.microsecond for t in millis] == [
        0,
        1000,
        2000,
    ]
    unsorted = read_dump(tmp_path / f"UNSORTED-trades-{DAY}.csv")
    assert sorted(unsorted["ts"].to_list()) == micros


def test_the_landing_says_why_it_passes_files_over(tmp_path):
    land(tmp_path, ALL)
    ignored: list[tuple[Path, str]] = []
    found = {path.name for path, _ in landing_dumps(tmp_path, ignored)}
    assert found == {Path(c.name).name for c in CASES}
    reasons = {path.name: why for path, why in ignored}
    for item in IGNORED:
        name = Path(item.name).name
        if item.ignored is None:
            assert name not in reasons
        else:
            assert item.ignored in reasons[name], (name, reasons.get(name))


def test_a_link_in_the_landing_is_passed_over_unread_naming_the_link(tmp_path):
    """A link to a good dump outside (a secret beside it) and a linked directory: neither is listed
    to load, each is passed over (the sensor moves it aside) with a reason naming the link, never
    its target; opening the link is refused (nothing of it read)."""
    root, outside = tmp_path / "landing", tmp_path / "outside-SECRET"
    root.mkdir()
    outside.mkdir()
    good = outside / f"LINKED-trades-{DAY}.csv"
    good.write_text(trades())
    (root / good.name).symlink_to(good)
    (root / "more").symlink_to(outside)  # holds a loadable name: never entered
    ignored: list[tuple[Path, str]] = []
    assert list(landing_dumps(root, ignored)) == []
    assert {path.name: why for path, why in ignored} == {
        name: (
            f"{name}: a symbolic link, not read (it points outside the landing area; a landing area is read "
            "without following links: put the file itself there)"
        )
        for name in (good.name, "more")
    }
    for path in (root / good.name, root / "more"):
        with pytest.raises(LinkRefused) as refused:
            has_rows(path)
        assert "SECRET" not in str(refused.value)


# ---- the load path: every file beside the others in one run -------------------------------------


@pytest.mark.parametrize("engine_reads_files", [True, False], ids=["engine-file-reader", "polars-reader"])
def test_one_load_of_every_file_each_bad_one_fails_alone(store, tmp_path, engine_reads_files):
    land(tmp_path, ALL)
    keys = [SliceKey(c.dataset, "BINANCE", c.instrument, DAY) for c in CASES]
    keys.append(SliceKey("trades", "BINANCE", "MISSINGFILE", DAY))
    run_id = f"corpus-{engine_reads_files}"
    feed = dump_feed(
        tmp_path, keys, engine_reads_files=engine_reads_files, database=store.database, run_id=run_id
    )
    report = Engine(store.get_client, store.database, run_id).run([[feed]])
    outcomes = {key.instrument: outcome for key, outcome in report.outcomes.items()}
    assert "no dump file MISSINGFILE-trades-2025-01-15.csv or .zip" in outcomes.pop("MISSINGFILE").error
    with store.get_client() as client:
        stored = dict(
            client.query(
                f"SELECT instrument, count() FROM `{store.database}`.trades_v GROUP BY instrument "
                f"UNION ALL SELECT instrument, count() FROM `{store.database}`.bars_1m_v "
                "GROUP BY instrument"
            ).result_rows
        )
    wrong = []
    for item in CASES:
        outcome = outcomes[item.instrument]
        expected = (
            item.engine_load
            if engine_reads_files and item.name.endswith(".csv") and item.engine_load
            else item.load
        )
        if expected is None:
            if (
                outcome.status != "ok"
                or outcome.rows != item.rows
                or stored.get(item.instrument) != item.rows
            ):
                wrong.append((item.instrument, "should load", outcome.status, outcome.error[:300]))
        elif (
            outcome.status != "failed"
            or expected not in outcome.error
            or item.instrument not in outcome.error
            or Path(item.name).name not in outcome.error
            or item.instrument in stored
        ):
            wrong.append((item.instrument, expected, outcome.status, outcome.error[:300]))
    assert not wrong, "\n".join(map(str, wrong))


def test_the_corpus_size():
    assert len(CASES) + len(IGNORED) + 1 >= 25  # + the missing file of the load test
    assert sum(c.read is not None or c.load is not None for c in CASES) >= 25
