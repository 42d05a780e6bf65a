"""`live_matches_hourly`: one closed hour of an instrument's trades, as the live path stored them
(`trades_live`, from the JetStream messages) and as the hourly load stored them (`trades`, from the
landing files), compared trade by trade: the same trade must have the same price, quantity and
amount on both paths (one parse of the venue's frame feeds both; a difference is a units defect),
and each path must hold what the other holds.

- ERROR: a trade whose values differ between the paths, or a trade only in `trades_live` (the
  hourly load lost it);
- WARN: trades only in the hourly load (refilled from the venue's REST API, or not consumed from
  JetStream yet: `trades_live` is incomplete for the hour);
- pending, not an error: while the hour is still open, the live trades after the last loaded one
  (a collector restart closes a segment, which loads at once; the rest lands at the hour's end);
- passed: both paths hold the same trades with the same values, so count, sum of quantity and sum
  of amount agree (shown); an hour with no `trades_live` row at all passes with a note (no live
  path ran: `marketdata collect` without NATS or the consumer).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.naming import parse_partition_key
from marketdata_assets.datasets.frames import TRADES_SPEC
from marketdata_assets.quality.checks import (
    CLICKHOUSE,
    HOUR,
    WARN,
    Check,
    ClickHouse,
    Verdict,
    instruments_verdict,
)

LIVE_MATCHES_HOURLY = "live_matches_hourly"
TRADES_LIVE = "trades_live"  # stores/clickhouse/live.py's table (quality reads it; the store owns it)
FIGURES = (
    "live_trades",
    "hourly_trades",
    "only_live",
    "only_hourly",
    "differing",
    "pending",
    "live_quantity",
    "hourly_quantity",
    "live_amount",
    "hourly_amount",
)


def hour_of(key: str) -> tuple[datetime, str, str]:
    """(hour start UTC, venue, instrument) of a 'YYYY-MM-DD-HH:MM|VENUE:INSTRUMENT' key."""
    hour, name = key.split("|")
    parsed = parse_partition_key(name)
    return (
        datetime.strptime(hour, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC),
        parsed.venue,
        parsed.instrument,
    )


def _compare_sql(db: str) -> str:
    where = (
        "(venue, instrument) IN {pairs:Array(Tuple(String, String))} AND ts >= {start:DateTime64(6, 'UTC')} "
        "AND ts < {end:DateTime64(6, 'UTC')}"
    )
    cols = "venue, instrument, trade_id, ts, price, quantity, amount"
    return (
        "SELECT venue, instrument, hour, countIf(in_l), countIf(in_b), countIf(in_l AND NOT in_b), "
        "countIf(in_b AND NOT in_l), countIf(in_l AND in_b AND (lp != bp OR lq != bq OR la != ba)), "
        "countIf(in_l AND NOT in_b AND t > last_b), "
        "sumIf(lq, in_l), sumIf(bq, in_b), sumIf(la, in_l), sumIf(ba, in_b) FROM (SELECT *, "
        "max(if(in_b, t, toDateTime64(0, 6, 'UTC'))) OVER (PARTITION BY venue, instrument, hour) AS last_b "
        "FROM (SELECT venue, instrument, trade_id, any(ts) AS t, toStartOfHour(any(ts)) AS hour, max(src = "
        "'l') AS in_l, max(src = 'b') AS in_b, anyIf(price, src = 'l') AS lp, anyIf(price, src = 'b') AS "
        "bp, anyIf(quantity, src = 'l') AS lq, anyIf(quantity, src = 'b') AS bq, anyIf(amount, src = 'l') "
        "AS la, anyIf(amount, src = 'b') AS ba FROM ("
        f"SELECT 'l' AS src, {cols} FROM {db}.{TRADES_LIVE} FINAL WHERE {where} UNION ALL "
        f"SELECT 'b' AS src, {cols} FROM {db}.`{TRADES_SPEC.view}` WHERE {where}"
        ") GROUP BY venue, instrument, trade_id)) GROUP BY venue, instrument, hour"
    )


def _verdict(key: str, figures: dict, open_hour: bool = False) -> Verdict:
    figures = {**figures, "pending": figures["pending"] if open_hour else 0}
    figures["only_live"] -= figures["pending"]
    counts = f"{figures['live_trades']:,} live, {figures['hourly_trades']:,} hourly" + (
        f", {figures['pending']:,} live after the last loaded trade (the hour is still landing)"
        if figures["pending"]
        else ""
    )
    if figures["live_trades"] == 0:
        return Verdict(
            True,
            f"{key}: no trades_live row in the hour (no live path ran); hourly {figures['hourly_trades']:,}",
            figures,
        )
    if figures["differing"] or figures["only_live"]:
        return Verdict(
            False,
            f"{key}: {figures['differing']:,} trades differ in price, quantity or amount between "
            f"trades_live and the hourly load, {figures['only_live']:,} only in trades_live ({counts})",
            figures,
        )
    if figures["only_hourly"]:
        return Verdict(
            False,
            f"{key}: {figures['only_hourly']:,} trades of the hourly load are not in trades_live "
            f"(refilled, or not consumed yet; {counts})",
            figures,
            WARN,
        )
    return Verdict(
        True, f"{key}: {counts}, the same trades with the same price, quantity and amount", figures
    )


def judge(store: ClickHouse, partitions: list[str], now: datetime | None = None) -> dict[str, Verdict]:
    """Verdicts by partition; an hour not ended at `now` (default: the clock) may hold pending live trades."""
    keys = {key: hour_of(key) for key in partitions}
    now = now or datetime.now(UTC)
    found: dict[tuple, dict] = {}
    if not int(
        store.client.command(f"EXISTS TABLE {clickhouse_database(store.database)}.{TRADES_LIVE}") or 0
    ):
        return {key: _verdict(key, dict.fromkeys(FIGURES, 0)) for key in partitions}
    if keys:
        hours = [hour for hour, _, _ in keys.values()]
        rows = store.client.query(
            _compare_sql(clickhouse_database(store.database)),
            parameters={
                "pairs": sorted({(v, i) for _, v, i in keys.values()}),
                "start": min(hours),
                "end": max(hours) + timedelta(hours=1),
            },
        ).result_rows
        for venue, instrument, hour, *values in rows:
            moment = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
            found[(moment, venue, instrument)] = dict(
                zip(FIGURES, (*values[:6], *(float(v) for v in values[6:])))
            )
    return {
        key: _verdict(key, found.get(spot, dict.fromkeys(FIGURES, 0)), spot[0] + timedelta(hours=1) > now)
        for key, spot in keys.items()
    }


def live_instruments(store: ClickHouse, hours: list[datetime]) -> dict[datetime, list[str]]:
    """Hour start -> the VENUE:INSTRUMENT keys with trades in `trades_live` that hour."""
    rows = (
        store.client.query(
            "SELECT DISTINCT toStartOfHour(ts), venue, instrument FROM "
            f"{clickhouse_database(store.database)}.{TRADES_LIVE} WHERE ts >= {{start:DateTime64(6, "
            "'UTC')} AND ts < {end:DateTime64(6, 'UTC')} ORDER BY venue, instrument",
            parameters={"start": min(hours), "end": max(hours) + timedelta(hours=1)},
        ).result_rows
        if hours
        else []
    )
    out: dict[datetime, list[str]] = {hour: [] for hour in hours}
    for hour, venue, instrument in rows:
        moment = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
        if moment in out:
            out[moment].append(f"{venue}:{instrument}")
    return out


def judge_hours(store: ClickHouse, partitions: list[str], now: datetime | None = None) -> dict[str, Verdict]:
    """Each hour ('YYYY-MM-DD-HH:MM') judged by its instruments with live trades (`judge` of each), one
    verdict."""
    if not int(
        store.client.command(f"EXISTS TABLE {clickhouse_database(store.database)}.{TRADES_LIVE}") or 0
    ):
        return {key: Verdict(True, f"{key}: no trades_live table (no live path ran)") for key in partitions}
    starts = {key: datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) for key in partitions}
    found = live_instruments(store, sorted(set(starts.values())))
    keys = {key: [f"{key}|{name}" for name in found[start]] for key, start in starts.items()}
    verdicts = judge(store, [k for ks in keys.values() for k in ks], now)
    return {
        key: instruments_verdict(key, {k: verdicts[k] for k in ks})
        if ks
        else Verdict(True, f"{key}: no trades_live row in the hour (no live path ran)")
        for key, ks in keys.items()
    }


LIVE_MATCHES_HOURLY_CHECK = Check(
    LIVE_MATCHES_HOURLY,
    "live_trades",
    "The hour's trades in trades_live (the live path) and in the hourly load are the same trades with the "
    "same price, quantity and amount (count, sum of quantity and sum of amount agree), for each instrument.",
    CLICKHOUSE,
    judge_hours,
    HOUR,
)
