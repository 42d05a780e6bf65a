"""What the assets' charts draw, read from the datasets' active rows (their `_v` views) inside
ClickHouse: time series of one column for a few instruments, averaged per time bucket, and the
volatility smiles of an option chain's latest snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.datasets.frames import spec_for


def series(
    client,
    database: str,
    dataset: str,
    column: str,
    instruments: Iterable[tuple[str, str]],
    first: date,
    last: date,
    bucket_s: int = 3600,
    where: dict[str, str] | None = None,
) -> dict[str, list[tuple[datetime, float]]]:
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
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    rows = client.query(
        f"SELECT concat(venue, ':', instrument) AS key, "
        f"toStartOfInterval(ts, toIntervalSecond({{bucket:UInt32}})) "
        f"AS at, avg(`{column}`) FROM {db}.`{spec.view}` WHERE (venue, instrument) IN "
        "{pairs:Array(Tuple(String, String))} AND ts >= {start:DateTime64(6, 'UTC')} "
        "AND ts < {end:DateTime64(6, 'UTC')}"
        + "".join(f" AND `{name}` = {{w{i}:String}}" for i, name in enumerate(where))
        + " GROUP BY key, at ORDER BY key, at",
        parameters={
            "bucket": int(bucket_s),
            "pairs": pairs,
            "start": start,
            "end": end,
            **{f"w{i}": value for i, value in enumerate(where.values())},
        },
    ).result_rows
    out: dict[str, list[tuple[datetime, float]]] = {}
    for key, at, value in rows:
        out.setdefault(key, []).append((at, value))
    return out


def smiles(
    client, database: str, venue: str, chain: str, expiries: int = 4
) -> dict[str, list[tuple[float, float]]]:
    """{'<expiry>': [(strike, mark IV), ...]} of the nearest `expiries` expiries in the chain's
    latest snapshot (its rows stamped within 5 minutes of the newest; each option's newest row),
    calls at and above the money and puts below: the usual out-of-the-money smile."""
    db = f"`{sql_identifier(database, 'ClickHouse database')}`"
    chain_rows = f"{db}.option_chain_v WHERE venue = {{venue:String}} AND instrument = {{chain:String}}"
    rows = client.query(
        "WITH snap AS (SELECT option, argMax(expiry, ts) AS expiry, argMax(strike, ts) AS strike, "
        "argMax(option_type, ts) AS call_put, argMax(underlying_price, ts) AS under, argMax(mark_iv, ts) AS "
        f"iv FROM {chain_rows} AND ts >= (SELECT max(ts) FROM {chain_rows}) - INTERVAL 5 MINUTE "
        "GROUP BY option) "
        "SELECT expiry, strike, iv FROM snap WHERE call_put = if(strike >= under, 'call', 'put') AND expiry "
        "IN (SELECT DISTINCT expiry FROM snap ORDER BY expiry LIMIT {n:UInt32}) ORDER BY expiry, strike",
        parameters={"venue": venue, "chain": chain, "n": int(expiries)},
    ).result_rows
    out: dict[str, list[tuple[float, float]]] = {}
    for expiry, strike, iv in rows:
        out.setdefault(f"{expiry:%Y-%m-%d}", []).append((strike, iv))
    return out
