"""Notebook-style example of the read API (run it cell by cell in an editor that knows `# %%`, or whole):
a day of trades and 1-minute bars into Polars, a VWAP and a re-load looked at `as_of`, and a PNG.

    scripts/with-env .venv/bin/python examples/read_plot.py --demo          # a scratch store from the replay
    scripts/with-env .venv/bin/python examples/read_plot.py BINANCE BTCUSDT 2025-01-15   # your store

`--demo` loads one day of the crypto replay into a scratch embedded ClickHouse (the ingest engine, as
the assets do) and loads it again from another replay seed, so there is a superseded load to look at.
Without it the store of your settings is read (CLICKHOUSE_DSN / CLICKHOUSE_DATABASE): on the
embedded engine the read waits for a Dagster step holding it, up to 10 s, then names that step.

The plot: matplotlib when it is installed (not a project dependency); otherwise the project's own
SVG line chart (core/charts.py) rendered to PNG by Debian's chromium through playwright (both in the
dev extra); without those, the SVG is written instead.
"""

# %% Setup: which store, which instrument and day
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from marketdata_assets import read
from marketdata_assets.core.charts import line_chart_svg

if {"-h", "--help"} & set(sys.argv[1:]):
    print(__doc__)
    raise SystemExit(0)
args = [a for a in sys.argv[1:] if a != "--demo"]
DEMO = "--demo" in sys.argv[1:]
if len(args) > 3 or any(a.startswith("-") for a in args):
    raise SystemExit(f"usage: read_plot.py [--demo] [VENUE INSTRUMENT DAY]; got {' '.join(sys.argv[1:])}")
VENUE, INSTRUMENT, DAY = (args + ["BINANCE", "BTCUSDT", "2025-01-15"][len(args) :])[:3]
try:
    DAY = date.fromisoformat(DAY)
except ValueError:
    raise SystemExit(f"read_plot.py: DAY {DAY!r} is not a day, YYYY-MM-DD") from None
OUT = Path(tempfile.gettempdir()) / f"read_plot_{VENUE}_{INSTRUMENT}_{DAY}.png"


def demo_store() -> tuple[str, datetime]:
    """A scratch store with DAY loaded twice (replay seeds 2, then 3); returns its DSN and a time between."""
    from marketdata_assets.datasets.slices import SliceKey
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
    from marketdata_assets.resources import ClickHouseResource
    from marketdata_assets.sources.venues import venue_client, venue_feed
    from marketdata_assets.stores.clickhouse import tables

    store = ClickHouseResource(
        dsn=f"chdb://{tempfile.mkdtemp(prefix='read-demo-')}/clickhouse", database="demo"
    )
    with store.get_client() as client:
        tables.ensure_tables(client, store.database)
    between = None
    for seed in (2, 3):
        with CryptoReplayServer(ReplayConfig(seed=seed, trades_per_day=20_000)) as server:
            keys = [SliceKey(d, VENUE, INSTRUMENT, DAY) for d in ("trades", "bars_1m")]
            feed = venue_feed(
                VENUE,
                lambda url=server.base_url: venue_client(VENUE, url, requests_per_minute=60_000),
                keys,
                workers=2,
                attempts=2,
            )
            Engine(store.get_client, store.database, f"demo-{seed}").run([[feed]])
        between = between or datetime.now(UTC)
        time.sleep(0.01)
    store.close()  # the embedded engine's lock: the Reader below takes it
    return store.dsn, between


if DEMO:
    dsn, between = demo_store()
    reader = read.Reader(clickhouse_dsn=dsn, clickhouse_database="demo")
else:
    between = None
    reader = read.Reader()

# %% Read: a day of trades and of 1-minute bars, as Polars frames (the datasets' schemas)
start, end = DAY, date.fromordinal(DAY.toordinal() + 1)
with reader:
    trades = reader.trades(VENUE, INSTRUMENT, start, end)
    bars = reader.bars(VENUE, INSTRUMENT, start, end)
    loads = reader.loads("trades", VENUE, INSTRUMENT, start, end)
    earlier = reader.trades(VENUE, INSTRUMENT, start, end, as_of=between) if between else None
print(trades.head())
print(loads)
if trades.is_empty():
    sys.exit(f"no trades of {VENUE}:{INSTRUMENT} on {DAY} in the store: load that day, or run with --demo")

# %% Compute: a 5-minute VWAP from the trades, next to the bars' close
vwap = trades.group_by_dynamic("ts", every="5m").agg(
    vwap=(pl.col("price") * pl.col("quantity")).sum() / pl.col("quantity").sum(), trades=pl.len()
)
series = {"5-min VWAP (trades)": list(zip(vwap["ts"], vwap["vwap"]))}
if not bars.is_empty():
    series["1-min close (bars)"] = list(zip(bars["ts"], bars["close"]))
if earlier is not None and not earlier.is_empty():
    before = earlier.group_by_dynamic("ts", every="5m").agg(
        vwap=(pl.col("price") * pl.col("quantity")).sum() / pl.col("quantity").sum()
    )
    series["5-min VWAP as_of before the re-load"] = list(zip(before["ts"], before["vwap"]))
print(vwap.describe())


# %% Plot to a PNG
def plot_png(series: dict, title: str, out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return svg_to_png(line_chart_svg(title, series, width=900, height=360), out)
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, points in series.items():
        ax.plot([x for x, _ in points], [v for _, v in points], label=name, linewidth=1)
    ax.set_title(title)
    ax.legend()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    return out


def svg_to_png(svg: str, out: Path) -> Path:
    """The SVG as a PNG through chromium (playwright); the SVG itself when they are not there."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        out = out.with_suffix(".svg")
        out.write_text(svg)
        return out
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 360})
            page.set_content(f'<html><body style="margin:0">{svg}</body></html>')
            page.locator("svg").screenshot(path=str(out))
        finally:
            browser.close()
    return out


written = plot_png(series, f"{VENUE}:{INSTRUMENT} {DAY}", OUT)
print(f"wrote {written}")
