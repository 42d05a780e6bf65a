"""Mutated archives through two checkouts' archive path (issue 62: "no result changes"): the same
verdicts, rows and ids, old and new.

From the archive replay's days (spot trades, spot aggTrades, spot 1m klines, USD-M trades, USD-M
liquidations; 2,000 trades a day), `--mutations` mutated copies of each file's CSV are zipped, each
mutation drawn from a seeded generator: a line deleted, repeated, swapped with the next, cut short,
a field made text, empty, negative or zero, a column added, a time moved to the next day or to
milliseconds, blank lines, a header line. Each checkout (`--tree`, its own process with cwd and
PYTHONPATH that checkout) loads every archive through `ArchiveRun` and the ingest engine into a fresh
chDB database (the archives given as verified: the download is not what changed) and prints, per
archive: the slice's status, rows, error text, drops by reason, and what its table then shows
(count, first and last id, sum of quantities). The driver compares the checkouts' answers archive by
archive; any difference is printed and the exit status is 1. `--engine-csv`: the spot trades and kline
files instead, unzipped, through the dump landing's feed with the engine's own reader (ClickHouse
file(): `writer.load_csv_files`), the same answers compared.

Run: `scripts/with-env .venv/bin/python -m bench archive_fuzz --tree /tmp/old --tree . [--mutations 40]`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import date
from pathlib import Path

DAY = date(2025, 1, 15)
BASES = [  # (market, family, interval): what each mutation starts from
    ("spot", "trades", ""),
    ("spot", "aggTrades", ""),
    ("spot", "klines", "1m"),
    ("um", "trades", ""),
    ("um", "liquidationSnapshot", ""),
]
LIQUIDATION_DAY = date(2024, 3, 29)  # liquidation archives end in 2024


def _mutate(lines: list[bytes], rng: random.Random) -> tuple[str, list[bytes]]:
    """One seeded mutation of a CSV's lines (the first line kept if it is a header)."""
    out = list(lines)
    start = 1 if out and out[0][:1].isalpha() else 0
    i = rng.randrange(start, len(out))
    fields = out[i].split(b",")
    j = rng.randrange(len(fields))
    kind = rng.choice(
        ["delete", "repeat", "swap", "cut", "text", "empty", "negative", "zero", "extra", "next day", "ms",
         "blank", "header", "none"]
    )  # fmt: skip
    if kind == "delete":
        del out[i]
    elif kind == "repeat":
        out.insert(i, out[i])
    elif kind == "swap" and i + 1 < len(out):
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "cut":
        out[i] = out[i][: max(1, len(out[i]) // 2)]
    elif kind in ("text", "empty", "negative", "zero"):
        fields[j] = {"text": b"abc", "empty": b"", "negative": b"-" + fields[j], "zero": b"0"}[kind]
        out[i] = b",".join(fields)
    elif kind == "extra":
        out[i] += b",1"
    elif kind in ("next day", "ms"):
        times = [k for k, f in enumerate(fields) if f.isdigit() and len(f) >= 13]
        if times:
            k = times[-1] if kind == "next day" else times[0]
            value = int(fields[k])
            unit = 1_000_000 if len(fields[k]) >= 16 else 1_000
            fields[k] = str(value + 86_400 * unit if kind == "next day" else value // 1000).encode()
            out[i] = b",".join(fields)
    elif kind == "blank":
        out.insert(i, b"")
    elif kind == "header":
        out.insert(i, b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match")
    return f"{kind} at line {i} field {j}", out


def build(workdir: Path, mutations: int, seed: int) -> list[dict]:
    """The mutated archives in the vendor's layout under `workdir` (and the unmutated ones)."""
    from marketdata_assets.replay.binance_archive import (
        ArchiveReplayConfig,
        BinanceArchiveReplayServer,
        csv_bytes,
    )
    from marketdata_assets.replay.binance_archive import parse_path as replay_path
    from marketdata_assets.sources.binance_vision.archives import ArchiveKey

    replay = BinanceArchiveReplayServer.__new__(BinanceArchiveReplayServer)
    replay.config = ArchiveReplayConfig(trades_per_day=2000, published_until=DAY)
    rng, made = random.Random(seed), []
    for market, family, interval in BASES:
        day = LIQUIDATION_DAY if family == "liquidationSnapshot" else DAY
        key = ArchiveKey(market, family, interval, "BTCUSDT", "daily", day)
        archive, _ = replay_path(key.path)
        lines = csv_bytes(archive, replay.frames(archive)).split(b"\n")
        for n in range(mutations + 1):
            what, mutated = ("none", lines) if n == 0 else _mutate(lines, rng)
            path = workdir / f"{n:03d}" / key.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
                out.writestr(key.name.removesuffix(".zip") + ".csv", b"\n".join(mutated))
            path.write_bytes(buffer.getvalue())
            made.append({"path": str(path), "key": [market, family, interval, day.isoformat()], "what": what})
    return made


def _engine_csv_feed(item: dict, key, database: str, data_dir: Path):
    """The archive's CSV, unzipped alone into a landing directory, as the dump feed with the engine's
    reader loads it."""
    from marketdata_assets.ingest.dumps import dump_feed

    landing = data_dir / "landing" / database
    landing.mkdir(parents=True)
    with zipfile.ZipFile(item["path"]) as archive:
        (member,) = archive.namelist()
        (landing / member).write_bytes(archive.read(member))
    return dump_feed(landing, key.slices(), engine_reads_files=True, database=database, run_id="fuzz")


def _same_words(error: str | None, data_dir: Path) -> str | None:
    """An engine error as both checkouts word it: without this checkout's directory and the engine's own
    plan of the statement (`while executing ...`, whose node numbers follow the statement's text)."""
    return error and error.replace(str(data_dir), "<data>").split(": while executing")[0]


def run_tree(manifest: Path, data_dir: Path, engine_csv: bool = False) -> int:
    """Every archive of the manifest through this checkout's ArchiveRun (`engine_csv`: its CSV through
    the dump feed with the engine's reader); prints one JSON line."""
    import contextlib
    import hashlib

    from marketdata_assets.datasets.frames import spec_for
    from marketdata_assets.ingest.archives import ArchiveRun
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.resources import ClickHouseResource
    from marketdata_assets.sources.binance_vision.archives import (
        ArchiveClient,
        ArchiveKey,
        Verified,
        daily_jobs,
    )
    from marketdata_assets.stores.clickhouse.tables import ensure_tables

    answers = []
    store = ClickHouseResource(dsn=f"chdb://{data_dir}", database="fuzz", lock_timeout_s=60)
    with store.get_client() as client:
        for n, item in enumerate(json.loads(manifest.read_text())):
            market, family, interval, day = item["key"]
            if engine_csv and (market, family) not in (("spot", "trades"), ("spot", "klines")):
                continue
            key = ArchiveKey(market, family, interval, "BTCUSDT", "daily", date.fromisoformat(day))
            database = f"fuzz_{n}"
            client.command(f"CREATE DATABASE `{database}`")
            ensure_tables(client, database)
            copy = Path(item["path"].replace("/archives/", "/read/"))  # the run removes what it read
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(Path(item["path"]).read_bytes())
            digest = hashlib.sha256(copy.read_bytes()).hexdigest()
            verified = {key: Verified(key, item["path"], copy, digest, copy.stat().st_size)}
            # every archive is given as verified: nothing is downloaded
            run = ArchiveRun(
                lambda: ArchiveClient("http://127.0.0.1:9"), data_dir, verified=verified, attempts=1
            )
            feed = (
                _engine_csv_feed(item, key, database, data_dir)
                if engine_csv
                else run.feed(daily_jobs(key.slices()))
            )
            report = Engine(lambda: contextlib.nullcontext(client), database, "fuzz").run([[feed]])
            outcome = next(iter(report.outcomes.values()))
            spec = spec_for(key.dataset)
            ident = "toUnixTimestamp64Micro(ts)" if key.dataset in ("bars_1m", "liquidations") else "seq"
            quantity = "volume" if key.dataset == "bars_1m" else "quantity"
            shown = client.query(
                f"SELECT count(), min({ident}), max({ident}), round(sum({quantity}), 6) "
                f"FROM `{database}`.`{spec.table}_v`"
            ).result_rows[0]
            answers.append(
                {
                    "archive": item["path"].split("/", 4)[-1],
                    "what": item["what"],
                    "status": outcome.status,
                    "rows": outcome.rows,
                    "error": _same_words(outcome.error, data_dir) if engine_csv else outcome.error,
                    "dropped": dict(outcome.dropped),
                    "shown": [int(shown[0]), int(shown[1] or 0), int(shown[2] or 0), float(shown[3] or 0)],
                }
            )
            client.command(f"DROP DATABASE `{database}`")
    store.close()
    print(json.dumps(answers))
    return 0


def _answers(trees: list[Path], manifest: Path, workdir: Path, engine_csv: bool) -> dict[Path, list]:
    """Each checkout's answers to the manifest's archives (its own process)."""
    answers = {}
    for tree in trees:
        tree = tree.resolve()
        done = subprocess.run(
            [sys.executable, "-m", "bench.archive_fuzz", "--tree", str(tree), "--run", str(manifest),
             "--data-dir", str(workdir / f"chdb-{tree.name}"), *(["--engine-csv"] if engine_csv else [])],
            cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: exit {done.returncode}\n{done.stderr[-3000:]}")
        answers[tree] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench archive_fuzz")
    parser.add_argument(
        "--tree", action="append", type=Path, required=True, help="a checkout (two to compare)"
    )
    parser.add_argument("--mutations", type=int, default=40, help="mutated copies of each base file")
    parser.add_argument("--seed", type=int, default=62)
    parser.add_argument("--engine-csv", action="store_true", help="the CSVs through the engine's reader")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # a tree's run: the manifest
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return run_tree(args.run, args.data_dir, args.engine_csv)
    workdir = Path(tempfile.mkdtemp(prefix="archive_fuzz_"))
    manifest = workdir / "manifest.json"
    manifest.write_text(json.dumps(build(workdir / "archives", args.mutations, args.seed)))
    try:
        answers = _answers(args.tree, manifest, workdir, args.engine_csv)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (first, a), *others = answers.items()
    differ = 0
    for tree, b in others:
        for one, other in zip(a, b, strict=True):
            if one != other:
                differ += 1
                print(f"DIFFERENT {one['archive']} ({one['what']}):\n  {first}: {one}\n  {tree}: {other}")
    verdicts: dict[str, int] = {}
    for answer in a:
        verdicts[answer["status"]] = verdicts.get(answer["status"], 0) + 1
    print(
        f"{len(a)} archives ({len(BASES)} files x {args.mutations} mutations + the originals): verdicts "
        f"{verdicts}; {differ} answer(s) differ between {', '.join(str(t) for t in answers)}"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
