"""Alpha files into MongoDB (SecantusDB): the project's deep-merge import vs raw `insert_many`.

50,000 realistic alphas (replay/alpha_factory.make_alpha, ~4.4 KB of canonical JSON each, one in five
SUPER, dateCreated spread over 24 months) landed as one file each with files.land_alpha. The import
runs exactly as the Dagster asset calls it: per month partition, the month's files listed with
files.month_alpha_files (named relative to the landing root), then `import_files(...)`. Phases, in
one run, on the same server, each in its own process (its own peak RSS):

1. first import (mode incremental) into empty collections;
2. overwrite merge (mode overwrite) after rewriting 99% of the files (new dateModified and a changed
   check value), so the merge really writes; then the same overwrite again with nothing changed,
   over the first NOOP_MONTHS months only (it reads and merges but writes nothing: docs/s);
3. incremental re-run with nothing changed (seconds; the median of RERUNS runs).
4. the coverage picture's engine (quality/alpha_coverage.py, as `alphas_coverage` runs it) over every
   month, every alpha stored, the landed files standing for the listing (seconds; no target).

The ceiling is raw `insert_many` of the same documents (documents.to_document of each alpha, built
before the clock starts, batches of 1000) into an empty collection with the indexes the import
maintains (ALPHA_INDEXES): the same collection definition the import writes into. It is measured
in samples between the months of the phase it is compared with (before every other month of the
first import, before the remaining months of the overwrite; all 50,000 documents once), so both
see the same load on this shared machine. For reference only, the first PLAIN_SAMPLE documents
are also inserted into a collection without secondary indexes: on SecantusDB the six indexes halve
insert_many, and building them after a load costs as much as keeping them, so that figure bounds
no import that leaves the indexes in place.

Targets (issue 3): first import >= 0.8x the ceiling, overwrite merge >= 0.35x, unchanged re-run
>= 20x faster than the first import, peak RSS < 500 MB. Each phase's results are checked (counts,
import statistics, a sample of stored documents). Exit status 1 if a target is missed.

`python -m bench alphas_import`; BENCH_ALPHAS=n for a smaller run. Results: results/alphas_import.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pymongo

from marketdata_assets.core import settings
from marketdata_assets.quality.alpha_coverage import coverage as alpha_coverage

ALPHAS = int(os.environ.get("BENCH_ALPHAS", "50000"))
SUPER_EVERY = 5  # one alpha in five is SUPER
ACCOUNT = "bench"
UNCHANGED_EVERY = 100  # the overwrite leaves one alpha in a hundred as it was
CEILING_BATCH = 1000
PLAIN_SAMPLE = 10_000  # documents of the reference insert without secondary indexes
NOOP_MONTHS = 4  # months of the no-op overwrite
RERUNS = 3  # incremental re-runs with nothing changed (the median counts)
DB_REGULAR, DB_SUPER, DB_CEILING = "bench_alphas_regular", "bench_alphas_super", "bench_alphas_ceiling"
COLLECTION = "alphas"
NEW_MODIFIED = "2026-01-05T10:00:00-05:00"
TARGETS = {
    "first_over_ceiling": 0.8,
    "overwrite_over_ceiling": 0.35,
    "first_over_rerun": 20.0,
    "peak_rss_mb": 500,
}


def client() -> pymongo.MongoClient:
    return pymongo.MongoClient(settings.get("MONGODB_URI"), **settings.mongo_auth())


def rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def alpha_type(seed: int) -> str:
    return "SUPER" if seed % SUPER_EVERY == 0 else "REGULAR"


# ---------------------------------------------------------------- data


def cached_landing(count: int) -> Path:
    """The landed files, generated once per count under the state dir (same seeds, same bytes)."""
    from marketdata_assets.datasets.alpha_files import land_alpha
    from marketdata_assets.replay.alpha_factory import make_alpha

    root = settings.state_dir() / "bench" / f"alphas_{count}"
    done = root / "complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        for seed in range(count):
            land_alpha(root, ACCOUNT, make_alpha(seed, alpha_type(seed)), fsync=False)
        done.write_text(f"{count}\n")
    return root


def link_tree(source: Path, target: Path) -> None:
    """Hard links of the cached files: the overwrite phase replaces files atomically (a new inode),
    so the cache is never modified."""
    for directory, _, names in os.walk(source):
        rel = Path(directory).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in names:
            if name.endswith(".json"):
                os.link(Path(directory) / name, target / rel / name)


def months(root: Path) -> list[str]:
    return sorted({p.name for p in (root / "alphas").glob("*/*")})


def modify_for_overwrite(root: Path) -> tuple[int, int]:
    """Rewrite all but one alpha in UNCHANGED_EVERY: new dateModified, a changed LOW_SHARPE value."""
    from marketdata_assets.datasets.alpha_files import iter_alpha_files, read_alpha_file, write_if_changed

    changed = unchanged = 0
    for i, path in enumerate(iter_alpha_files(root)):
        if i % UNCHANGED_EVERY == 0:
            unchanged += 1
            continue
        alpha, problem = read_alpha_file(path)
        assert problem is None, (path, problem)
        alpha["dateModified"] = NEW_MODIFIED
        check = alpha["is"]["checks"][0]
        check["value"] = round(check["value"] + 0.01, 2)
        assert write_if_changed(path, alpha, fsync=False) == "written"
        changed += 1
    return changed, unchanged


# ---------------------------------------------------------------- phases (each in its own process)


def ceiling_sample(coll, paths: list[Path]) -> float:
    """insert_many of these files' documents in batches of CEILING_BATCH: seconds of the inserts only
    (each batch's documents are built before its clock starts)."""
    from marketdata_assets.datasets.alpha_files import read_alpha_file
    from marketdata_assets.stores.mongo.documents import to_document

    seconds = 0.0
    for start in range(0, len(paths), CEILING_BATCH):
        docs = [to_document(read_alpha_file(p)[0]) for p in paths[start : start + CEILING_BATCH]]
        started = time.monotonic()
        coll.insert_many(docs, ordered=False)
        seconds += time.monotonic() - started
    return seconds


def phase_plain(root: Path) -> dict:
    """The reference without secondary indexes: the first PLAIN_SAMPLE documents."""
    from marketdata_assets.datasets.alpha_files import iter_alpha_files

    coll = client()[DB_CEILING]["plain"]
    paths = list(iter_alpha_files(root))[:PLAIN_SAMPLE]
    seconds = ceiling_sample(coll, paths)
    return {"seconds": seconds, "documents": coll.count_documents({}), "rss_mb": rss_mb()}


def month_files(root: Path, month: str) -> dict[str, list[tuple[str, Path]]]:
    """The month's files per import call, as the alpha_documents asset lists them: REGULAR takes
    every type directory but SUPER, names are paths relative to the landing root."""
    from marketdata_assets.datasets.alpha_files import month_alpha_files

    return {
        "REGULAR": month_alpha_files(root, month, exclude_types=("SUPER",)),
        "SUPER": month_alpha_files(root, month, alpha_type="SUPER"),
    }


def phase_import(
    root: Path, mode: str, run_id: str, only_months: list[str], ceiling_months: list[str]
) -> dict:
    """One month partition after another (a run per partition: a REGULAR and a SUPER call). Before
    each of `ceiling_months`, a ceiling sample of that month's documents into the ceiling collection,
    so the ceiling is measured under the same load as the import it is compared with."""
    from marketdata_assets.datasets.alpha_files import iter_alpha_files
    from marketdata_assets.ingest.alphas.importer import import_files

    mongo = client()
    ceiling = mongo[DB_CEILING]["indexed"]
    batch_size = (
        int(os.environ.get("BENCH_BATCH", "0"))
        or inspect.signature(import_files).parameters["batch_size"].default
    )
    quarantine_root = root.parent / "quarantine"
    totals: dict = {}
    seconds = ceiling_s = 0.0
    ceiling_docs = 0
    for month in only_months or months(root):
        if month in ceiling_months:
            paths = list(iter_alpha_files(root, None, month))
            ceiling_s += ceiling_sample(ceiling, paths)
            ceiling_docs += len(paths)
        started = time.monotonic()
        for files in month_files(root, month).values():
            stats = import_files(
                files,
                db_regular=mongo[DB_REGULAR],
                db_super=mongo[DB_SUPER],
                collection=COLLECTION,
                mode=mode,
                batch_size=batch_size,
                quarantine_root=quarantine_root,
                landing_root=root,
                run_id=run_id,
            )
            for key, value in stats.as_metadata().items():
                totals[key] = totals.get(key, 0) + value
        seconds += time.monotonic() - started
    return {
        "seconds": seconds,
        "stats": totals,
        "batch_size": batch_size,
        "rss_mb": rss_mb(),
        "ceiling_s": ceiling_s,
        "ceiling_docs": ceiling_docs,
    }


def run_phase(name: str, root: Path, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.alphas_import", "--phase", name, str(root), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- checks


def check_documents(root: Path, sample: list[Path]) -> None:
    """Stored documents of a sample of files are exactly the alphas the files hold (every alpha
    in a file has all the fields of the stored one, so the deep merge gives the file's alpha)."""
    from marketdata_assets.datasets.alpha_files import read_alpha_file
    from marketdata_assets.stores.mongo.documents import from_document

    mongo = client()
    for path in sample:
        alpha, _ = read_alpha_file(root / path)
        db = mongo[DB_SUPER if alpha["type"] == "SUPER" else DB_REGULAR]
        assert from_document(db[COLLECTION].find_one({"_id": alpha["id"]})) == alpha, path


def check_counts(expected: int) -> None:
    mongo = client()
    stored = sum(mongo[db][COLLECTION].count_documents({}) for db in (DB_REGULAR, DB_SUPER))
    assert stored == expected, (stored, expected)


def stored_digest() -> str:
    """sha256 of each alpha collection, every document in _id order (collection_digest)."""
    from marketdata_assets.stores.mongo.alphas import collection_digest

    mongo = client()
    return ", ".join(f"{db} {collection_digest(mongo[db][COLLECTION])[:16]}" for db in (DB_REGULAR, DB_SUPER))


def expect(stats: dict, **wanted: int) -> None:
    got = {key: stats.get(key) for key in wanted}
    assert got == wanted, (got, wanted)


# ---------------------------------------------------------------- main


def fresh_databases() -> None:
    from marketdata_assets.stores.mongo.alphas import ALPHA_INDEXES, ensure_alpha_indexes

    mongo = client()
    for name in (DB_REGULAR, DB_SUPER, DB_CEILING):
        mongo.drop_database(name)
    ensure_alpha_indexes(mongo[DB_REGULAR], mongo[DB_SUPER], COLLECTION)
    mongo[DB_CEILING]["indexed"].create_indexes(ALPHA_INDEXES)  # what the import writes into
    mongo[DB_CEILING].create_collection("plain")


def drop_databases() -> None:
    mongo = client()
    for name in (DB_REGULAR, DB_SUPER, DB_CEILING):
        mongo.drop_database(name)


def main() -> int:
    settings.apply_defaults()
    n = ALPHAS
    started = time.monotonic()
    cache = cached_landing(n)
    work = Path(tempfile.mkdtemp(prefix="bench_alphas_"))
    root = work / "landing"
    link_tree(cache, root)
    sizes = [p.stat().st_size for p in (root / "alphas").glob("*/*/*/*.json")]
    assert len(sizes) == n, (len(sizes), n)
    sample = [
        p.relative_to(root)
        for p in random.Random(7).sample(sorted((root / "alphas").glob("*/*/*/*.json")), 200)
    ]
    print(
        f"data: {n:,} alpha files, {len(months(root))} months, mean {sum(sizes) / n:,.0f} B "
        f"({sum(sizes) / 1e6:.0f} MB; {time.monotonic() - started:.1f} s to prepare)",
        flush=True,
    )
    report: dict = {"alphas": n, "mean_file_bytes": round(sum(sizes) / n), "months": len(months(root))}
    try:
        fresh_databases()

        plain = run_phase("plain", root)
        plain_n = min(n, PLAIN_SAMPLE)
        assert plain["documents"] == plain_n, plain
        plain_rate = plain_n / plain["seconds"]
        print(
            f"insert_many, no secondary index: {plain_rate:>8,.0f} docs/s (first {plain_n:,} documents; "
            f"reference only)",
            flush=True,
        )

        all_months = months(root)
        even, odd = all_months[0::2], all_months[1::2]
        first = run_phase("import", root, "incremental", "bench-first", "--ceiling-months", *even)
        expect(first["stats"], files_seen=n, files_imported=n, inserted=n, merged=0, files_quarantined=0)
        check_counts(n)
        check_documents(root, sample)
        digest = stored_digest()  # old vs new code: the same documents stored
        print(f"stored after the first import: {digest}", flush=True)
        first_ceiling = first["ceiling_docs"] / first["ceiling_s"]
        print(
            f"ceiling insert_many: {first['ceiling_s']:6.1f} s {first_ceiling:>8,.0f} docs/s "
            f"({first['ceiling_docs']:,} documents of {len(even)} months, between the import's months)",
            flush=True,
        )
        print(
            f"first import:        {first['seconds']:6.1f} s {n / first['seconds']:>8,.0f} docs/s", flush=True
        )

        changed, unchanged = modify_for_overwrite(root)
        overwrite = run_phase("import", root, "overwrite", "bench-overwrite", "--ceiling-months", *odd)
        expect(
            overwrite["stats"],
            files_seen=n,
            merged=changed,
            unchanged=unchanged,
            inserted=0,
            files_quarantined=0,
        )
        check_counts(n)
        check_documents(root, sample)
        assert client()[DB_CEILING]["indexed"].count_documents({}) == n
        over_ceiling = overwrite["ceiling_docs"] / overwrite["ceiling_s"]
        print(
            f"ceiling insert_many: {overwrite['ceiling_s']:6.1f} s {over_ceiling:>8,.0f} docs/s "
            f"({overwrite['ceiling_docs']:,} documents of {len(odd)} months, between the overwrite's months)",
            flush=True,
        )
        print(
            f"overwrite merge:     {overwrite['seconds']:6.1f} s {n / overwrite['seconds']:>8,.0f} docs/s "
            f"({changed:,} merged, {unchanged:,} unchanged)",
            flush=True,
        )

        noop_months = all_months[:NOOP_MONTHS]
        noop = run_phase("import", root, "overwrite", "bench-noop", "--months", *noop_months)
        noop_n = noop["stats"]["files_seen"]
        expect(noop["stats"], merged=0, unchanged=noop_n, inserted=0)
        print(
            f"overwrite, no change:{noop['seconds']:6.1f} s {noop_n / noop['seconds']:>8,.0f} docs/s "
            f"({noop_n:,} alphas of {len(noop_months)} months)",
            flush=True,
        )

        reruns = []
        for attempt in range(RERUNS):  # a few seconds each: the median is less at the mercy of one load spike
            reruns.append(run_phase("import", root, "incremental", f"bench-rerun-{attempt}"))
            expect(reruns[-1]["stats"], files_seen=n, files_skipped=n, inserted=0, merged=0, unchanged=0)
        rerun = sorted(reruns, key=lambda r: r["seconds"])[len(reruns) // 2]
        runs = ", ".join(f"{r['seconds']:.2f}" for r in reruns)
        print(
            f"incremental re-run:  {rerun['seconds']:6.2f} s (nothing changed; median of {runs})", flush=True
        )
        check_documents(root, sample)

        # alphas_coverage's engine over the same landing area and collections (every alpha stored)
        started = time.monotonic()
        grid = alpha_coverage(
            root,
            all_months,
            [ACCOUNT],
            {"REGULAR": client()[DB_REGULAR][COLLECTION], "SUPER": client()[DB_SUPER][COLLECTION]},
        )
        coverage_s = time.monotonic() - started
        assert sum(c.stored for c in grid.cells.values()) == n and grid.overall == 1.0, grid.overall
        print(
            f"coverage picture:    {coverage_s:6.2f} s ({n:,} alphas, {len(all_months)} months, all stored)",
            flush=True,
        )
    finally:
        drop_databases()
        shutil.rmtree(work, ignore_errors=True)

    import_rss = max(p["rss_mb"] for p in (first, overwrite, noop, rerun))
    first_rate, over_rate = n / first["seconds"], n / overwrite["seconds"]
    report |= {
        "ceiling_docs_per_s_during_first": round(first_ceiling),
        "ceiling_docs_during_first": first["ceiling_docs"],
        "ceiling_docs_per_s_during_overwrite": round(over_ceiling),
        "ceiling_docs_during_overwrite": overwrite["ceiling_docs"],
        "unindexed_insert_docs_per_s": round(plain_rate),
        "unindexed_insert_sample": plain_n,
        "first_import_stored_digest": digest,
        "first_import_s": round(first["seconds"], 2),
        "first_import_docs_per_s": round(first_rate),
        "overwrite_s": round(overwrite["seconds"], 2),
        "overwrite_docs_per_s": round(over_rate),
        "overwrite_merged": changed,
        "overwrite_unchanged": unchanged,
        "noop_overwrite_alphas": noop_n,
        "noop_overwrite_s": round(noop["seconds"], 2),
        "noop_overwrite_docs_per_s": round(noop_n / noop["seconds"]),
        "rerun_s": round(rerun["seconds"], 2),
        "rerun_s_all": [round(r["seconds"], 2) for r in reruns],
        "first_over_ceiling": round(first_rate / first_ceiling, 3),
        "overwrite_over_ceiling": round(over_rate / over_ceiling, 3),
        "first_over_unindexed_insert": round(first_rate / plain_rate, 3),
        "overwrite_over_unindexed_insert": round(over_rate / plain_rate, 3),
        "first_over_rerun": round(first["seconds"] / rerun["seconds"], 1),
        "coverage_s": round(coverage_s, 2),
        "peak_rss_mb": import_rss,
        "peak_rss_mb_by_phase": {
            "unindexed_insert": plain["rss_mb"],
            "first": first["rss_mb"],
            "overwrite": overwrite["rss_mb"],
            "noop_overwrite": noop["rss_mb"],
            "rerun": rerun["rss_mb"],
        },
        "batch_size": first["batch_size"],
        "stats": {
            "first": first["stats"],
            "overwrite": overwrite["stats"],
            "noop_overwrite": noop["stats"],
            "rerun": rerun["stats"],
        },
        "targets": TARGETS,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    missed = [
        name
        for name, target in TARGETS.items()
        if (report[name] >= target if name == "peak_rss_mb" else report[name] < target)
    ]
    report["missed"] = missed
    print(
        f"first import vs ceiling: {report['first_over_ceiling']}x (target >= 0.8; "
        f"{report['first_over_unindexed_insert']}x of the unindexed insert); "
        f"overwrite vs ceiling: {report['overwrite_over_ceiling']}x (target >= 0.35; "
        f"{report['overwrite_over_unindexed_insert']}x of the unindexed insert); "
        f"re-run {report['first_over_rerun']}x faster than the first import (target >= 20); "
        f"peak RSS {import_rss} MB (target < 500)"
    )
    print("all targets met" if not missed else f"MISSED: {', '.join(missed)}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "alphas_import.json").write_text(json.dumps(report, indent=2) + "\n")
    return 1 if missed else 0


def _phase_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", required=True, choices=["plain", "import"])
    parser.add_argument("root", type=Path)
    parser.add_argument("mode", nargs="?")
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--months", nargs="*", default=[])
    parser.add_argument("--ceiling-months", nargs="*", default=[])
    args = parser.parse_args(argv)
    settings.apply_defaults()
    if args.phase == "plain":
        result = phase_plain(args.root)
    else:
        result = phase_import(args.root, args.mode, args.run_id, args.months, args.ceiling_months)
    print(json.dumps(result))


if __name__ == "__main__":
    if "--phase" in sys.argv:
        _phase_main(sys.argv[1:])
    else:
        sys.exit(main())
