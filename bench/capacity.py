"""The capacity model of issue #25 (docs/scale-out.md): how many run workers, ClickHouse shards and live
collectors the full universes take (every Binance spot and USD-M instrument, every OKX swap, Deribit's
options, 5,000 A-share codes), and where the first bottleneck is, from figures measured on this machine.

`python -m bench capacity [--measure] [--json] [--emit-kustomize DIR]`: prints the plan; `--emit-kustomize`
writes the plan's sizes into a kustomize overlay (its consumers, and its ClickHouse cluster's shards).
`--measure` first refreshes the run sample (bench/capacity_runs.json) from the Dagster instance's run records
(DAGSTER_HOME: the local stack's), the runs this machine actually made: per run its wall time, its steps and
their busy time.

Three kinds of figures, kept apart so the answer can be re-derived when one changes:

- MEASURED: this machine's figures, each naming where it was measured (a bench, a doc's table, the
  instance's runs). The model must reproduce what was measured here from them (tests/bench/test_capacity.py:
  the crypto fetch bench's seconds per venue from its request counts and the declared limits; the
  runs' wall times from the fitted per-run and per-step overhead);
- DECLARED: the request budgets the project declares (sources/data_providers.yaml, the clients'
  weights and per-endpoint limits);
- ASSUMED: what cannot be measured here (universe sizes, trades per instrument-day, a pod's start,
  bytes per stored row, the daily window): stated with each answer, and a flag away from changing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RUNS_FILE = HERE / "capacity_runs.json"
PROVIDERS = HERE.parent / "marketdata_assets" / "sources" / "data_providers.yaml"

# ---- figures measured on this machine (2 shared cores), with where they come from ----------------------
MEASURED = {
    "code_location_import_s": (
        1.45,
        (
            "python -m bench imports --rounds 3 (2026-11-23): cold import of "
            "marketdata_assets.definitions, median wall 1,451 ms (CPU 1,367 ms): what "
            "every launched run process pays before its first step"
        ),
    ),
    "rest_trades_rows_per_s": (
        21_500,
        (
            "bench ticks_load JSON path (REST pages through the replay, parse + "
            "load): 17,100 / 24,869 / 21,529 rows/s, 3 rounds of bench/results/"
            "compare.log 2026-11-23 (median 21,529)"
        ),
    ),
    "archive_rows_per_s": (
        380_000,
        (
            "bench ticks_load CSV path (dump file -> engine): 385,654 / 380,373 / "
            "478,469 rows/s (compare.log, median 385,654, taken 380,000); docs/ticks.md: "
            "archive verify + read + load 0.31-0.52 M rows/s"
        ),
    ),
    "insert_ceiling_rows_per_s": (
        700_000,
        (
            "bench ticks_load ceiling (the engine's own CSV reader): 698,324-"
            "736,377 rows/s on 2 shared cores (compare.log)"
        ),
    ),
    "frame_cost_s": (
        11.7e-6,
        (
            "bench live_capture throughput (2026-11-25, whole-window queue, 3 rounds): 11.7 us "
            "of CPU a frame through receive -> raw landing -> books -> JetStream (46.2 on "
            "2026-11-24, before batched publishes and the Sans-I/O client)"
        ),
    ),
    "consumer_trades_per_s": (
        18_600,
        (
            "bench live_consumer (2026-11-24): one NATS -> ClickHouse consumer, "
            "18,607-21,995 trades/s on one core (the lowest round)"
        ),
    ),
}
# bench crypto_datasets (docs/crypto-datasets.md "Measured" table): one day of funding, open interest and
# tickers per instrument through the replay at the venues' limits; requests by the limit that paces them
CRYPTO_BENCH = {
    "BINANCE_UM": {"instruments": 70, "seconds": 17.4, "requests": {"bucket": 351}},
    # OKX: per instrument 1 ticker (20 / 2 s), 1 funding page (10 / 2 s), 3 open-interest pages (10 / 2 s)
    "OKX": {
        "instruments": 70,
        "seconds": 62.7,
        "requests": {"ticker": 70, "funding": 70, "open_interest": 210},
    },
    "DERIBIT": {"instruments": 60, "seconds": 8.7, "requests": {"credits": 182}},
}
LIVE_VENUES = ("binance", "binance_um", "okx")  # the trade streams the live collector captures (issue #23)
OKX_ENDPOINT_PER_S = {"ticker": 10.0, "funding": 5.0, "open_interest": 5.0}  # docs/crypto-datasets.md


# ---- assumed (cannot be measured here) --------------------------------------------------------------------
@dataclass(frozen=True)
class Universe:
    """One dataset family of the full universe: its instruments, trades (rows) per instrument-day split
    into a busy head and a tail, the path that loads it, and the venue budget its fetch draws on."""

    name: str
    venue: str
    instruments: int
    busy: int  # instruments in the busy head
    busy_rows: int  # rows per busy instrument-day
    tail_rows: int  # rows per other instrument-day
    path: str  # "rest" | "archive" | "snapshot" (rows/s of MEASURED)
    requests_per_instrument: float = 0.0  # API requests per instrument-day (0: no API budget used)
    rows_per_request: int = 0  # a trade page's rows (requests = rows / this), when not fixed per instrument
    requests_fixed: int = 0  # requests a day whatever the instruments (a whole-market endpoint)
    partitions_per_day: int = 0  # Dagster partitions a day of the dataset (0: one per instrument)


FULL_UNIVERSE = (  # sizes as of late 2026 [assumed]: the venues' exchangeInfo / instruments lists
    # crypto history: one partition per venue and day (day x venue), its instruments inside the run
    Universe("binance spot trades", "binance", 1_500, 50, 1_000_000, 40_000, "archive", partitions_per_day=1),
    Universe(
        "binance USD-M trades", "binance_um", 530, 50, 2_000_000, 150_000, "archive", partitions_per_day=1
    ),
    Universe(
        "binance USD-M funding/OI/ticker", "binance_um", 530, 0, 292, 292, "rest", 5.0, partitions_per_day=1
    ),
    Universe(
        "okx swap trades", "okx", 250, 20, 500_000, 30_000, "rest", rows_per_request=100, partitions_per_day=1
    ),
    Universe("okx swap funding/OI/ticker", "okx", 250, 0, 292, 292, "rest", 5.0, partitions_per_day=1),
    # option chains: an hourly snapshot of every option, one request and one partition per currency
    Universe(
        "deribit option snapshots",
        "deribit",
        1_600,
        0,
        24,
        24,
        "snapshot",
        requests_fixed=48,
        partitions_per_day=2,
    ),
    # A-shares: one stk_mins request per code, the whole market in one partition (a run) per trading day
    Universe("a-share 1-minute bars", "tushare", 5_000, 0, 241, 241, "rest", 1.0, partitions_per_day=1),
    Universe("a-share daily bars", "tushare", 5_000, 0, 1, 1, "rest", requests_fixed=1, partitions_per_day=1),
)
ASSUMED = {
    "pod_start_s": (
        6.0,
        (
            "a K8sRunLauncher run's pod scheduled and started from a cached image on a healthy "
            "cluster [assumed]; the code location's import and the run's own start are MEASURED"
        ),
    ),
    "daily_window_h": (4.0, "yesterday's data loaded within 4 hours of its publication [assumed]"),
    "worker_utilization": (0.7, "a run worker's busy share over that window [assumed]"),
    "bytes_per_row": (
        20.0,
        (
            "stored bytes per trade row: Binance's zip is 20.1 MB per 1,000,000 trades "
            "(docs/ticks.md); ClickHouse's Delta+ZSTD columns are taken as the same [assumed]"
        ),
    ),
    "shard_tb": (4.0, "usable disk per shard replica [assumed]"),
    "retention_years": (5.0, "history kept: 2022 to 2026 [assumed]"),
    "frames_per_trade": (
        1.0,
        "one WebSocket frame a trade (Binance trade/aggTrade, OKX trades, Deribit trades)",
    ),
    "book_frames_per_instrument_s": (
        10.0,
        (
            "depth diffs at 100 ms (Binance depth@100ms, OKX books, Deribit "
            "book.100ms) [assumed: the venues' push interval, every tick busy]"
        ),
    ),
    "other_frames_per_instrument_s": (
        12.0,
        (
            "the other datasets `collect` takes by default: tickers ~10/s (OKX "
            "tickers and Deribit ticker.100ms push every 100 ms at most; Binance "
            "bookTicker is real time, taken as the same), 1-minute bars ~1/s "
            "(Binance kline every 1-2 s), mark price 1/s; funding, open interest "
            "and liquidations are rare [assumed from the venues' push rates]"
        ),
    ),
    "collector_cores": (1.0, "one core per collector, at most 50% busy at the daily peak"),
    "peak_over_mean": (5.0, "the busiest minute carries 5x the day's mean trade rate [assumed]"),
    "overhead_share": (0.1, "launch overhead allowed per run: 10% of its wall time"),
    "dagster_partitions_per_asset": (
        100_000,
        (
            "sources/data_providers.yaml: keep instruments x days under "
            "Dagster's ~100,000 partitions per asset"
        ),
    ),
}


def value(table: dict, key: str, overrides: dict | None = None) -> float:
    return float((overrides or {}).get(key, table[key][0]))


def declared_budgets(path: Path = PROVIDERS) -> dict[str, float]:
    """Requests per second each source's client allows (sources/data_providers.yaml): its bucket."""
    sources = yaml.safe_load(path.read_text())["sources"]
    return {name: float(spec["requests_per_minute"]) / 60 for name, spec in sources.items()}


def declared_weights(path: Path = PROVIDERS) -> dict[str, float]:
    """Binance request weight per second (weight_per_minute x headroom / 60) of each weighted source."""
    sources = yaml.safe_load(path.read_text())["sources"]
    return {
        name: spec["weight_per_minute"] * spec.get("weight_headroom", 1.0) / 60
        for name, spec in sources.items()
        if "weight_per_minute" in spec
    }


# ---- the model --------------------------------------------------------------------------------------------
def fetch_seconds(venue: str, requests: dict[str, int], budgets: dict[str, float]) -> float:
    """Seconds a venue's fetch takes at its limits: the requests of each limit at that limit's pace, the
    limits one after another (a worker waiting at one gate holds its slot, so the gates do not overlap)."""
    if venue == "OKX":
        return sum(n / OKX_ENDPOINT_PER_S[limit] for limit, n in requests.items())
    pace = {"BINANCE_UM": budgets["binance_um"], "DERIBIT": budgets["deribit"]}[venue]
    return sum(requests.values()) / pace


@dataclass(frozen=True)
class RunCost:
    """A run's wall time = ``fixed`` + ``per_step`` x steps + its steps' busy time."""

    fixed: float
    per_step: float

    def wall(self, steps: int, busy: float) -> float:
        return self.fixed + self.per_step * steps + busy


def fit_run_cost(runs: list[dict]) -> RunCost:
    """Least squares of (wall - busy) on the step count over the measured runs."""
    xs = [r["steps"] for r in runs]
    ys = [r["wall_s"] - r["busy_s"] for r in runs]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return RunCost(fixed=round(my - slope * mx, 3), per_step=round(slope, 3))


@dataclass
class Line:
    """The plan of one dataset family for a day of the full universe."""

    name: str
    venue: str
    instruments: int
    rows_per_day: int
    partitions_per_day: int
    requests_per_day: int
    fetch_s: float  # seconds of requests at the source's declared pace (one client, one IP)
    load_s: float  # seconds of loading (rows / the path's measured rows/s)
    busy_per_partition_s: float  # the mean partition's busy time: max(fetch, load) / partitions
    batch: int  # partitions per run so launch overhead stays under its share
    runs_per_day: int

    @property
    def busy_s(self) -> float:
        return max(self.fetch_s, self.load_s)


def plan_line(u: Universe, budgets: dict[str, float], measured: dict, assumed: dict, launch: float) -> Line:
    rows = u.busy * u.busy_rows + (u.instruments - u.busy) * u.tail_rows
    rate = {
        "rest": value(measured, "rest_trades_rows_per_s"),
        "archive": value(measured, "archive_rows_per_s"),
        "snapshot": value(measured, "rest_trades_rows_per_s"),
    }[u.path]
    requests = u.requests_fixed + (
        math.ceil(rows / u.rows_per_request)
        if u.rows_per_request
        else math.ceil(u.instruments * u.requests_per_instrument)
    )
    fetch, load = requests / budgets[u.venue], rows / rate
    partitions = u.partitions_per_day or u.instruments
    per_partition = max(fetch, load) / partitions
    share = value(assumed, "overhead_share")
    batch = min(partitions, max(1, math.ceil(launch * (1 - share) / share / per_partition)))
    return Line(
        u.name,
        u.venue,
        u.instruments,
        rows,
        partitions,
        requests,
        fetch,
        load,
        per_partition,
        batch,
        math.ceil(partitions / batch),
    )


@dataclass
class Limit:
    """One resource of the plan: the day's demand on it against what one unit of it gives."""

    resource: str
    demand: float
    per_unit: float
    unit: str

    @property
    def load(self) -> float:
        """Demand over one unit: > 1 means more than one unit (or a change) is needed."""
        return self.demand / self.per_unit

    @property
    def units(self) -> int:
        return max(1, math.ceil(self.load))


@dataclass
class Plan:
    lines: list[Line]
    launch_s: float
    rows_per_day: int
    partitions_per_day: int
    runs_per_day_batched: int
    limits: list[Limit]  # ranked: the first is the first bottleneck
    assumptions: dict = field(default_factory=dict)

    def units(self, resource: str) -> int:
        """Units of a resource: of every limit whose name contains ``resource``, summed by unit kind."""
        return sum(limit.units for limit in self.limits if resource in limit.resource)

    @property
    def backfill_partitions(self) -> int:
        return int(
            next((lim.demand for lim in self.limits if lim.resource.startswith("Dagster partitions")), 0)
        )

    @property
    def launch_share_unbatched(self) -> float:
        """Share of the run workers' time spent launching runs, one partition a run."""
        launching = self.partitions_per_day * self.launch_s
        return launching / (launching + sum(line.busy_s for line in self.lines))


def launch_seconds(cost: RunCost, measured=MEASURED, assumed=ASSUMED, overrides: dict | None = None) -> float:
    """A launched run's fixed cost: its pod's start [assumed] + the code location's import + the run's own
    fixed cost (both measured here)."""
    return (
        value(assumed, "pod_start_s", overrides)
        + value(measured, "code_location_import_s", overrides)
        + cost.fixed
    )


def limits(lines: list[Line], universe, launch: float, meas: dict, assm: dict) -> list[Limit]:
    """Every resource's demand and one unit's capacity, ranked by load (the first saturates first)."""
    window = value(assm, "daily_window_h") * 3600
    rows = sum(line.rows_per_day for line in lines)
    per_instrument = [u for u in universe if not u.partitions_per_day]
    found = [
        Limit(
            "run launch, one partition a run",
            sum(line.partitions_per_day for line in lines) * launch,
            window * value(assm, "worker_utilization"),
            "run worker",
        ),
        Limit(
            "run workers, batched runs",
            sum(line.busy_s + line.runs_per_day * launch for line in lines),
            window * value(assm, "worker_utilization"),
            "run worker",
        ),
        Limit(
            "ClickHouse disk",
            rows * 365 * value(assm, "retention_years") * value(assm, "bytes_per_row"),
            value(assm, "shard_tb") * 1e12,
            "shard",
        ),
        Limit(
            "ClickHouse inserts at the peak",
            rows / 86_400 * value(assm, "peak_over_mean"),
            0.5 * value(meas, "insert_ceiling_rows_per_s"),
            "shard",
        ),
    ]
    if per_instrument:  # instrument x day partitions of one asset over the history kept
        found.append(
            Limit(
                "Dagster partitions per asset (backfill)",
                max(u.instruments for u in per_instrument) * 365 * value(assm, "retention_years"),
                value(assm, "dagster_partitions_per_asset"),
                "asset partitioned otherwise",
            )
        )
    for venue in sorted({line.venue for line in lines if line.requests_per_day}):
        fetch = sum(line.fetch_s for line in lines if line.venue == venue)
        found.append(Limit(f"{venue} request budget", fetch, window, "egress IP (client)"))
    for u, line in zip(universe, lines):  # one collector per venue group at least (docs/live-capture.md)
        if u.name.endswith("trades") and u.venue in LIVE_VENUES:
            per_instrument = value(assm, "book_frames_per_instrument_s") + value(
                assm, "other_frames_per_instrument_s"
            )
            frames = (
                line.rows_per_day / 86_400 * value(assm, "peak_over_mean") * value(assm, "frames_per_trade")
                + per_instrument * u.instruments
            )
            found.append(
                Limit(
                    f"{u.venue} collector CPU at the peak",
                    frames * value(meas, "frame_cost_s"),
                    0.5 * value(assm, "collector_cores"),
                    "collector",
                )
            )
    live = [line for u, line in zip(universe, lines) if u.name.endswith("trades") and u.venue in LIVE_VENUES]
    if (
        live
    ):  # every live trade through the durable consumer(s) into trades_live; pull consumers share a durable
        found.append(
            Limit(
                "NATS -> ClickHouse consumer at the peak",
                sum(line.rows_per_day for line in live) / 86_400 * value(assm, "peak_over_mean"),
                0.5 * value(meas, "consumer_trades_per_s"),
                "consumer",
            )
        )
    return sorted(found, key=lambda limit: limit.load, reverse=True)


def plan(
    cost: RunCost, universe=FULL_UNIVERSE, measured=MEASURED, assumed=ASSUMED, overrides: dict | None = None
) -> Plan:
    """The full-universe answer (module docstring), for runs of the measured ``cost``."""
    budgets = declared_budgets()
    meas = {k: (value(measured, k, overrides), why) for k, (_, why) in measured.items()}
    assm = {k: (value(assumed, k, overrides), why) for k, (_, why) in assumed.items()}
    launch = launch_seconds(cost, meas, assm)
    lines = [plan_line(u, budgets, meas, assm, launch) for u in universe]
    return Plan(
        lines,
        launch,
        sum(line.rows_per_day for line in lines),
        sum(line.partitions_per_day for line in lines),
        sum(line.runs_per_day for line in lines),
        limits(lines, universe, launch, meas, assm),
        {k: v for k, (v, _) in assm.items()},
    )


# ---- measuring and reporting ------------------------------------------------------------------------------
def measure_runs() -> list[dict]:
    """Per run of the Dagster instance (DAGSTER_HOME): wall (start to end event), busy (its steps'
    start-to-end time summed: in-process runs run their steps one after another) and step count."""
    from dagster import DagsterInstance

    runs = []
    with DagsterInstance.get() as instance:
        for record in instance.get_run_records():
            start = end = None
            steps: dict[str, list] = {}
            for entry in instance.all_logs(record.dagster_run.run_id):
                kind = entry.dagster_event.event_type_value if entry.dagster_event else None
                if kind in ("PIPELINE_START", "RUN_START"):
                    start = entry.timestamp
                elif kind in ("PIPELINE_SUCCESS", "RUN_SUCCESS", "PIPELINE_FAILURE", "RUN_FAILURE"):
                    end = entry.timestamp
                elif kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                    steps.setdefault(entry.step_key, [None, None])[kind != "STEP_START"] = entry.timestamp
            if start is None or end is None:
                continue
            busy = sum(b - a for a, b in steps.values() if a is not None and b is not None)
            runs.append(
                {
                    "wall_s": round(end - start, 3),
                    "busy_s": round(busy, 3),
                    "steps": len(steps),
                    "queued_s": round(start - record.create_timestamp.timestamp(), 3),
                }
            )
    return runs


def report(p: Plan, cost: RunCost, runs: list[dict]) -> str:
    out = [
        (
            f"measured run cost (in-process, {len(runs)} runs of this machine's instance): {cost.fixed:.2f} "
            f"s a run + {cost.per_step:.3f} s a step; median queued->started "
            f"{statistics.median(r['queued_s'] for r in runs):.2f} s; a launched run's fixed cost "
            f"{p.launch_s:.1f} s"
        ),
        (
            f"{'dataset':<34} {'instr.':>6} {'rows/day':>12} {'req/day':>8} {'fetch s':>8} {'load s':>7} "
            f"{'part./d':>7} {'s/part.':>8} {'batch':>6} {'runs/d':>6}"
        ),
    ]
    for line in p.lines:
        out.append(
            f"{line.name:<34} {line.instruments:>6,} {line.rows_per_day:>12,} {line.requests_per_day:>8,} "
            f"{line.fetch_s:>8,.0f} {line.load_s:>7,.0f} {line.partitions_per_day:>7,} "
            f"{line.busy_per_partition_s:>8.3f} {line.batch:>6} {line.runs_per_day:>6,}"
        )
    out.append(
        f"rows/day {p.rows_per_day:,}; runs/hour {p.partitions_per_day / 24:,.1f} one partition a run "
        f"({p.launch_share_unbatched:.0%} of run-worker time launching), {p.runs_per_day_batched / 24:,.1f} "
        "batched"
    )
    if p.backfill_partitions:
        out.append(
            f"backfill: {p.backfill_partitions:,} instrument-day partitions per per-instrument asset; one a "
            f"run, {p.backfill_partitions * p.launch_s / 3600:,.0f} worker-hours of launching alone"
        )
    budgets = [
        f"{lim.resource.split()[0]} {lim.units}" for lim in p.limits if "request budget" in lim.resource
    ]
    out.append(
        f"answer: run workers {p.units('run workers')}, ClickHouse shards "
        f"{shards(p)} (x{CLICKHOUSE_REPLICAS} replicas), collectors "
        f"{p.units('collector CPU') + 1} (one per trade venue group + Deribit), consumers "
        f"{p.units('consumer at the peak')}, egress IPs "
        f"{', '.join(budgets)}"
    )
    out.append("resources, the most loaded first (load = the day's demand over one unit):")
    for limit in p.limits:
        out.append(f"  {limit.resource:<42} load {limit.load:>7.2f}  -> {limit.units:>3} {limit.unit}")
    out.append(f"first bottleneck: {p.limits[0].resource}")
    return "\n".join(out)


# ---- the plan as a deployment ------------------------------------------------------------------------------
COLLECTOR_GROUPS = {
    "binance": "BINANCE",
    "binance_um": "BINANCE_UM",
    "okx": "OKX",
}  # + DERIBIT, one collector
CLICKHOUSE_REPLICAS = 2  # per shard: one node can go down (docs/scale-out.md)
GENERATED = (
    "# Generated by `python -m bench capacity --emit-kustomize {dir}` from bench/capacity.py; do not edit.\n"
)


def shards(p: Plan) -> int:
    return max(p.units("ClickHouse disk"), p.units("ClickHouse inserts"))


def kustomize_files(p: Plan, directory: str, cluster: str = "desk") -> dict[str, str]:
    """{file name: text} of the overlay's generated part: the live consumers' replicas (a patch) and the
    ClickHouse cluster's remote_servers (a ConfigMap for the servers' config.d, `shards` x 2 replicas).
    Collectors are one per venue group (two copies of one would land every frame twice): a group the model
    gives more than one is refused, naming it (its instruments must be split first)."""
    crowded = {
        group: n for venue, group in COLLECTOR_GROUPS.items() if (n := p.units(f"{venue} collector CPU")) > 1
    }
    if crowded:
        raise SystemExit(
            f"the model asks more than one collector for {crowded}: split those venue groups' "
            "instruments into collectors of their own before generating the overlay"
        )
    head = GENERATED.format(dir=directory)
    replicas = (
        f"{head}# NATS -> ClickHouse consumers at the full universe's peak, on the one durable.\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: live-consumer\nspec:\n"
        f"  replicas: {p.units('consumer at the peak')}\n"
    )
    nodes = "\n".join(
        "                <shard>\n                    <internal_replication>true</internal_replication>\n"
        + "".join(
            (
                "                    "
                f"<replica><host>clickhouse-{s}-{r}.clickhouse</host><port>9000</port></replica>\n"
            )
            for r in range(1, CLICKHOUSE_REPLICAS + 1)
        )
        + "                </shard>"
        for s in range(1, shards(p) + 1)
    )
    servers = (
        f"{head}# The ClickHouse cluster CLICKHOUSE_CLUSTER names: {shards(p)} shards x "
        f"{CLICKHOUSE_REPLICAS} replicas (disk and inserts of the full universe); mount into every server's "
        "config.d.\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: clickhouse-remote-servers\ndata:\n"
        "  remote_servers.xml: |\n    <clickhouse>\n        <remote_servers>\n"
        f"            <{cluster}>\n{nodes}\n            </{cluster}>\n        </remote_servers>\n    "
        "</clickhouse>\n"
    )
    return {"capacity-consumers.yaml": replicas, "clickhouse-cluster.yaml": servers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench capacity", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--measure", action="store_true", help="refresh bench/capacity_runs.json from the instance"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--emit-kustomize",
        metavar="DIR",
        type=Path,
        help="write the plan's consumers and ClickHouse shards into this kustomize overlay",
    )
    args = parser.parse_args(argv)
    if args.measure:
        RUNS_FILE.write_text(json.dumps(measure_runs(), indent=0) + "\n")
    runs = json.loads(RUNS_FILE.read_text())
    cost = fit_run_cost(runs)
    p = plan(cost)
    print(
        json.dumps({"run_cost": asdict(cost), **asdict(p)}, indent=1, default=str)
        if args.json
        else report(p, cost, runs)
    )
    if args.emit_kustomize:
        for name, text in kustomize_files(p, str(args.emit_kustomize)).items():
            (args.emit_kustomize / name).write_text(text)
            print(f"wrote {args.emit_kustomize / name}")
    return 0
