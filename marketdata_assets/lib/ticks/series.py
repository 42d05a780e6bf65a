"""Time series of one stored column for a few instruments, read from a dataset's active rows (its
`_v` view) and averaged per time bucket inside ClickHouse: what the assets' charts draw."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

from marketdata_assets.lib.identifiers import sql_identifier
from marketdata_assets.lib.ticks.frames import spec_for


def series(client, database: str, dataset: str, column: str, instruments: Iterable[tuple[str, str]],
           first: date, last: date, bucket_s: int = 3600,
           where: dict[str, str] | None = None) -> dict[str, list[tuple[datetime, float]]]:
    """{'VENUE:INSTRUMENT': [(bucket start, mean of `column`), ...]} over the UTC days first..last,
    of the rows whose columns equal `where`'s values (factors: {"factor": "vwap"})."""
    spec = spec_for(dataset)
    where = where or {}
    for name in (column, *where):
        if name not in spec.schema:
            raise ValueError(f"{dataset} has no column {name!r} (columns: {list(spec.schema)})")
    pairs = sorted(set(instruments))
    if not pairs:
        return {}
    db = f"`{sql_identifier(database, 'ClickHouse database')}`"
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    end = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
    rows = client.query(
        f"SELECT concat(venue, ':', instrument) AS key, toStartOfInterval(ts, toIntervalSecond({{bucket:UInt32}})) "
        f"AS at, avg(`{column}`) FROM {db}.`{spec.view}` WHERE (venue, instrument) IN "
        "{pairs:Array(Tuple(String, String))} AND ts >= {start:DateTime64(6, 'UTC')} "
        "AND ts < {end:DateTime64(6, 'UTC')}" + "".join(f" AND `{name}` = {{w{i}:String}}" for i, name in enumerate(where))
        + " GROUP BY key, at ORDER BY key, at",
        parameters={"bucket": int(bucket_s), "pairs": pairs, "start": start, "end": end,
                    **{f"w{i}": value for i, value in enumerate(where.values())}}).result_rows
    out: dict[str, list[tuple[datetime, float]]] = {}
    for key, at, value in rows:
        out.setdefault(key, []).append((at, value))
    return out
