"""The alpha landing sensor with 100,000 files present (issue 3: it stays within its time budget).

100,000 small alpha files in the landing layout (2 types x 25 months x 4 accounts x 500 alphas),
plus a few dropped packages; three evaluations of `alpha_landing_files` through Dagster's sensor
context: cold (no cursor: every file is new), quiet (cursor at the newest file, nothing changed),
and after one new file. Budget: an evaluation must end well inside Dagster's 60 s timeout; the
sensor stops handling changes after TIME_BUDGET_S (40 s) and the next tick resumes from the cursor.
The walk is what grows with the tree: the report gives its time per 100,000 files.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from datetime import datetime
from pathlib import Path

FILES_PER_DIR, ACCOUNTS, MONTHS, TYPES = 500, 4, 25, ("REGULAR", "SUPER")


def make_tree(root: Path) -> int:
    """The landing tree (kept between runs)."""
    marker = root / ".complete"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    n = 0
    for alpha_type in TYPES:
        for m in range(MONTHS):
            month = f"{2023 + m // 12}-{m % 12 + 1:02d}"
            for a in range(ACCOUNTS):
                directory = root / "alphas" / alpha_type / month / f"acct{a}"
                directory.mkdir(parents=True, exist_ok=True)
                for i in range(FILES_PER_DIR):
                    alpha_id = f"{alpha_type[0]}{m:02d}{a}{i:04d}"
                    (directory / f"{alpha_id}.json").write_text(
                        json.dumps(
                            {"id": alpha_id, "type": alpha_type, "dateCreated": f"{month}-10T10:00:00-04:00"}
                        )
                        + "\n"
                    )
                    n += 1
    marker.write_text(str(n))
    return n


def main() -> int:
    from marketdata_assets.core import settings

    settings.apply_defaults()
    root = settings.state_dir() / "bench" / "alpha_landing"
    started = time.monotonic()
    files = make_tree(root)
    print(f"landing tree: {files:,} alpha files ({time.monotonic() - started:.1f} s to prepare)")
    os.environ["ALPHA_LANDING_DIR"] = str(root)

    import dagster as dg

    from marketdata_assets.defs.alphas import sensors

    report: dict = {"files": files, "time_budget_s": sensors.TIME_BUDGET_S}
    with dg.instance_for_test() as instance:

        def evaluate(cursor):
            t0 = time.monotonic()
            result = sensors.alpha_landing_files(dg.build_sensor_context(instance=instance, cursor=cursor))
            return time.monotonic() - t0, result

        cold_s, cold = evaluate(None)
        quiet_s, quiet = evaluate(cold.cursor)
        new = root / "alphas" / "REGULAR" / "2024-03" / "acct0" / "Znew0001.json"
        new.write_text(
            json.dumps({"id": "Znew0001", "type": "REGULAR", "dateCreated": "2024-03-09T10:00:00-05:00"})
        )
        one_s, one = evaluate(quiet.cursor)
        new.unlink()
    report.update(
        {
            "cold_s": round(cold_s, 2),
            "cold_run_requests": len(cold.run_requests),
            "quiet_s": round(quiet_s, 2),
            "quiet_run_requests": len(quiet.run_requests),
            "one_new_file_s": round(one_s, 2),
            "one_new_file_requests": [r.partition_key for r in one.run_requests],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "at": datetime.now().isoformat(timespec="seconds"),
        }
    )
    print(f"cold evaluation (every file new): {cold_s:.2f} s, {len(cold.run_requests)} run requests")
    print(f"quiet evaluation (nothing new):   {quiet_s:.2f} s")
    print(f"one new file:                     {one_s:.2f} s -> {report['one_new_file_requests']}")
    print(
        f"peak RSS {report['peak_rss_mb']} MB; budget {sensors.TIME_BUDGET_S:.0f} s, Dagster's timeout 60 s"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "alphas_sensor.json").write_text(json.dumps(report, indent=2))
    ok = max(cold_s, quiet_s, one_s) < sensors.TIME_BUDGET_S and one.run_requests and not quiet.run_requests
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
