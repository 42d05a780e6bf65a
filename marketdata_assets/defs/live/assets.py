"""`live_trades`: live trades of the closed landing hours (ingest/live/hourly/load.py: Binance spot, OKX,
Deribit), by hour (the instruments with a closed file of the hour inside the run), in the same
ClickHouse `trades` slices as the REST and archive data.

Thin: the run's hours and their instruments in, the day slices those hours feed rewritten by one engine
run (one feed per venue, each slice from every closed file of its day so far: idempotent and exact;
docs/live-capture.md), then:
- one MaterializeResult: rows loaded, slices, the run's hours' frames, discards by reason, markers,
  lag exchange -> receive p50/p95; the reconciliation of the run's hours (trades from the live
  landing vs from the REST/archive refill, `reconciliation` table; also written to ClickHouse
  `live_reconciliation`) and their book gaps (`book_gaps`, from the landing files' `gap` markers);
  the coverage picture of live hours (`coverage`: instruments x the last 48 hours, loaded / loaded
  with gaps / missing, core/charts.heatmap_svg like the upkeep coverage asset);
- one AssetObservation per hour with that hour's own figures and a table of its instruments': the
  collector's health per landing hour in the UI (frames, gaps, disconnects, overflow, lag, live vs
  refilled trades).
"""

from datetime import timedelta

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.core.naming import parse_partition_key, partition_key
from marketdata_assets.defs._common.figures import add_own, as_run
from marketdata_assets.defs._common.ingest import (
    TICK_STORE,
    IngestConfig,
    engine,
    materialize,
    planned,
    run_instruments,
)
from marketdata_assets.defs.live.landed import hour_instruments_landed
from marketdata_assets.defs.live.partitions import (
    FRESHNESS,
    landing_hour,
    live_partitions,
    partition_hour,
)
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.ingest.live.hourly.load import (
    LIVE_VENUES,
    HourFigures,
    LiveTradesLoad,
    book_gaps,
    day_files,
    file_hour,
    hour_key,
    live_slices,
    parse_hour,
    stored_live_rows,
)
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse.live import record_reconciliation

GROUP = "live"
# every hourly live load (live_trades, live_<dataset>): one policy
HOURLY_LOAD = {
    "group_name": GROUP,
    "partitions_def": live_partitions,
    "deps": [TICK_STORE],
    "kinds": {"clickhouse"},
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": pools.CLICKHOUSE,
    "freshness_policy": FRESHNESS,
}
COVERAGE_HOURS = 48


class LiveIngestConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these instruments (VENUE:INSTRUMENT) of the run's hours; empty: every one with a closed landing
    file of the hour that this asset loads (the landing sensor names those whose files closed)."""


def hour_instruments(
    partition_keys, asset: str, instruments=(), venues=LIVE_VENUES, what: str = "trades"
) -> list[tuple[str, str, str]]:
    """(landing hour, venue, instrument) of the run's hour keys ('YYYY-MM-DD-HH:00') x `instruments`, or
    x the instruments with a closed file of the hour that `asset` loads; a venue not in `venues` (those
    with live `what`) is refused."""
    hours = [landing_hour(str(key)) for key in partition_keys]
    landed = {} if instruments else hour_instruments_landed(settings.live_landing_dir(), asset, hours)
    triples = []
    for hour in hours:
        for key in instruments or landed[hour]:
            parsed = parse_partition_key(key)
            if parsed.venue not in venues:
                raise ValueError(
                    f"{key}: no live {what} of venue {parsed.venue} (live venues: {', '.join(venues)})"
                )
            triples.append((hour, parsed.venue, parsed.instrument))
    return triples


def hour_observations(
    context, figures_of, triples, extra_of=None, own_rows=None, kept: str = "trades"
) -> list[HourFigures]:
    """One AssetObservation per hour partition of the run: the hour's figures (its instruments' merged; the
    rows kept named `kept`) and a table of each instrument's; returns every (hour, instrument)'s figures.
    With `own_rows` (an instrument-hour's figures -> its rows stored) each hour's materialization carries
    those figures too, its `rows` its own (the run's figures are `run_*`: `run_hours_metadata`)."""
    everything = []
    keys = context.partition_keys
    for key in keys:
        hour = landing_hour(str(key))
        mine = [(venue, instrument) for h, venue, instrument in triples if h == hour]
        figures = [figures_of(venue, instrument, hour) for venue, instrument in mine]
        everything += figures
        plain = hour_metadata(merged(figures), kept) if figures else {}
        rows = [
            (
                f"{v}:{i}",
                f.frames,
                f.trades,
                sum(f.discarded.values()),
                f.markers.get("gap", 0),
                *((extra_of(hour, v, i),) if extra_of else ()),
            )
            for (v, i), f in zip(mine, figures)
        ]
        plain["instruments"] = dg.MetadataValue.md(
            table(
                [
                    "instrument",
                    "frames",
                    "kept",
                    "discarded",
                    "gaps",
                    *(["live / refilled / book gaps"] if extra_of else []),
                ],
                rows,
            )
            if rows
            else "none"
        )
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=str(key), metadata=plain)
        )
        if own_rows is not None:
            own = sum(own_rows(f) for f in figures)
            add_own(context, key, {**plain, "rows": dg.MetadataValue.int(own)}, len(keys))
    return everything


def run_hours_metadata(hours: list[HourFigures], rows: int, kept: str = "trades") -> dict:
    """The run's figures beside each hour's own: `run_<figure>` of its hours merged, `hours` (the first
    three), `run_rows` (the rows of the day slices the run wrote, counted once by the console)."""
    run = hour_metadata(merged(hours), kept) if hours else {}
    return {
        **as_run({name: value for name, value in run.items() if name != "hour"}),
        "hours": run.get("hour", ""),
        "run_rows": dg.MetadataValue.int(rows),
    }


def merged(figures: list[HourFigures]) -> HourFigures:
    """Several hours' figures as one (the run's)."""
    total = HourFigures(", ".join(f.hour for f in figures[:3]) + (" ..." if len(figures) > 3 else ""))
    for f in figures:
        total.files += f.files
        total.frames, total.trades = total.frames + f.frames, total.trades + f.trades
        total.discarded.update(f.discarded)
        total.markers.update(f.markers)
        total.lags_ms += f.lags_ms
        total.recovered, total.torn_dropped = (
            total.recovered + f.recovered,
            total.torn_dropped + f.torn_dropped,
        )
    return total


def hour_metadata(figures: HourFigures, kept: str = "trades") -> dict:
    plain = figures.metadata()
    plain[kept] = plain.pop("trades")
    return {
        **plain,
        "discarded_by_reason": dg.MetadataValue.json(plain["discarded_by_reason"]),
        "markers": dg.MetadataValue.json(plain["markers"]),
        **{k: dg.MetadataValue.float(plain[k]) for k in ("lag_p50_ms", "lag_p95_ms") if plain[k] is not None},
    }


def reconcile(
    clickhouse: ClickHouseResource, root, origins: dict, hours: list[tuple[str, str, str]]
) -> list[dict]:
    """Per (hour, venue, instrument) of the run: trades from the live landing and from the refill
    (`origins`: (venue, instrument) -> hour -> [live, refilled]) and the hour's book gaps; written to
    `live_reconciliation` (every hour of the days the run rewrote, since each was recounted)."""
    records = []
    for (venue, instrument), by_hour in origins.items():
        for hour, (live, refilled) in by_hour.items():
            gaps = book_gaps(root, venue, instrument, hour)
            records.append(
                {
                    "hour": hour,
                    "venue": venue,
                    "instrument": instrument,
                    "live_trades": live,
                    "refilled_trades": refilled,
                    "book_gaps": gaps,
                }
            )
    wanted = set(hours)
    for hour, venue, instrument in hours:  # an hour without trades still has its row (and its gaps)
        if hour not in origins.get((venue, instrument), {}):
            records.append(
                {
                    "hour": hour,
                    "venue": venue,
                    "instrument": instrument,
                    "live_trades": 0,
                    "refilled_trades": 0,
                    "book_gaps": book_gaps(root, venue, instrument, hour),
                }
            )
    with clickhouse.get_client() as client:
        record_reconciliation(
            client,
            clickhouse.database,
            [
                (
                    r["venue"],
                    r["instrument"],
                    parse_hour(r["hour"]),
                    r["live_trades"],
                    r["refilled_trades"],
                    len(r["book_gaps"]),
                )
                for r in records
            ],
        )
    return sorted(
        (r for r in records if (r["hour"], r["venue"], r["instrument"]) in wanted),
        key=lambda r: (r["venue"], r["instrument"], r["hour"]),
    )


def reconciliation_metadata(records: list[dict]) -> dict:
    rows = [
        (
            r["hour"],
            f"{r['venue']}:{r['instrument']}",
            f"{r['live_trades']:,}",
            f"{r['refilled_trades']:,}",
            len(r["book_gaps"]),
        )
        for r in records
    ]
    gaps = [
        {"hour": r["hour"], "instrument": f"{r['venue']}:{r['instrument']}", **g}
        for r in records
        for g in r["book_gaps"]
    ]
    return {
        "live_trades_from_landing": sum(r["live_trades"] for r in records),
        "trades_from_refill": sum(r["refilled_trades"] for r in records),
        "book_gaps": dg.MetadataValue.json(gaps),
        "reconciliation": dg.MetadataValue.md(
            table(["hour", "instrument", "from live landing", "from REST/archive refill", "book gaps"], rows)
        ),
    }


def coverage_hours(last_hour: str, hours: int = COVERAGE_HOURS) -> list[str]:
    """The landing hours of the coverage picture, the oldest first, up to `last_hour`."""
    last = parse_hour(last_hour)
    return [hour_key(last - timedelta(hours=h)) for h in range(hours - 1, -1, -1)]


def coverage(
    instance,
    asset_key,
    root,
    instruments: list[str],
    last_hour: str,
    loaded_now=(),
    hours: int = COVERAGE_HOURS,
) -> tuple[str, dict[str, int]]:
    """The live hours' picture: instruments x the `hours` up to `last_hour`, each cell loaded (1),
    loaded with book gaps or without a trade file of its own (0.5), not loaded (0); and the counts.
    Loaded: the hour is materialized (`instance`), or loaded by this run (`loaded_now`)."""
    columns = coverage_hours(last_hour, hours)
    done = set(instance.get_materialized_partitions(asset_key)) | {str(k) for k in loaded_now}
    cells, counts = [], {"loaded": 0, "with_gaps": 0, "missing": 0}
    for key in instruments:
        parsed, line = parse_partition_key(key), []
        landed = {
            file_hour(p)
            for day in {parse_hour(c).date() for c in columns}
            for p in day_files(root, parsed.instrument, day, parsed.venue)
        }
        for hour in columns:
            if partition_hour(hour) not in done:
                line.append(0.0)
                counts["missing"] += 1
            elif book_gaps(root, parsed.venue, parsed.instrument, hour) or hour not in landed:
                line.append(0.5)
                counts["with_gaps"] += 1
            else:
                line.append(1.0)
                counts["loaded"] += 1
        cells.append(line)
    svg = heatmap_svg(
        f"live hours loaded, {columns[0]}..{columns[-1]} (amber: book gaps)",
        instruments,
        [c[5:] for c in columns],
        cells,
    )
    return svg_markdown_image(svg, "live hours coverage"), counts


@dg.asset(**HOURLY_LOAD)
def live_trades(context: dg.AssetExecutionContext, config: LiveIngestConfig, clickhouse: ClickHouseResource):
    """Live trades (Binance spot, OKX, Deribit) from the collector's closed landing hours, in ClickHouse
    `trades` (every trade, each trade id once): each run rewrites the UTC day slices its hours feed
    from every closed landing file of those days so far (a re-run changes nothing)."""
    triples = hour_instruments(context.partition_keys, "live_trades", config.instruments)
    report = IngestReport()
    slices = []
    for venue in dict.fromkeys(v for _, v, _ in triples):
        mine = [
            key
            for hour, v, instrument in triples
            if v == venue
            for key in live_slices([hour], [(v, instrument)])
        ]
        slices += planned(clickhouse, config, LIVE_VENUES[venue].source, mine, report)
    with clickhouse.get_client() as client:  # what a refill added is kept (ingest/live/hourly/load.py)
        stored = stored_live_rows(client, clickhouse.database, slices)
    root = settings.live_landing_dir()
    instruments = run_instruments(clickhouse, {key.venue for key in slices})  # each hour's valid sizes
    load = LiveTradesLoad(root, slices, stored=stored, service=instruments)
    report.merge(engine(context, clickhouse, config).run([load.feeds(config.workers or 1, config.attempts)]))
    instruments.keep()  # what the load looked up at the venues, stored once
    instruments.close()
    records = reconcile(clickhouse, root, load.origins, triples)
    clickhouse.close()
    by_key = {(r["hour"], r["venue"], r["instrument"]): r for r in records}

    def found(hour, venue, instrument) -> str:
        r = by_key.get((hour, venue, instrument), {})
        return (
            f"{r.get('live_trades', 0):,} / {r.get('refilled_trades', 0):,} / {len(r.get('book_gaps', ())):,}"
        )

    hours = hour_observations(
        context,
        lambda v, i, h: load.figures.get((v, i), {}).get(h, HourFigures(h)),
        triples,
        found,
        own_rows=lambda f: f.trades,
    )
    extra = {"trades": run_hours_metadata(hours, report.metadata("trades")["rows"])}
    extra["trades"]["kept_from_store"] = sum(load.kept.values())  # trades a refill added, no file holds
    extra["trades"].update(reconciliation_metadata(records))
    if triples:
        landed = {
            key
            for keys in hour_instruments_landed(
                root, "live_trades", coverage_hours(max(h for h, _, _ in triples))
            ).values()
            for key in keys
        }
        instruments = sorted({partition_key(v, i) for _, v, i in triples} | landed)
        chart, counts = coverage(
            context.instance,
            context.asset_key,
            root,
            instruments,
            max(h for h, _, _ in triples),
            context.partition_keys,
        )
        extra["trades"].update(
            {"coverage": dg.MetadataValue.md(chart), **{f"coverage_{k}": v for k, v in counts.items()}}
        )
    yield from materialize(context, report, {"trades": "live_trades"}, config.max_failed, extra)
