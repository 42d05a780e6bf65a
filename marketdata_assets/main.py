"""The main job of `make run`: materialize the whole asset graph on offline replay data.

Runs in-process against the instance in DAGSTER_HOME (Postgres storage), so the
materializations show up in the UI that `make run` serves next. Unpartitioned assets go in one
run; partitioned domains add their partition ranges to `plan()` as they arrive.
"""

from __future__ import annotations

import sys
import time

import dagster as dg


def plan(defs: dg.Definitions) -> list[tuple[str, list[dg.AssetsDefinition], str | None]]:
    """(label, assets, partition key) runs, in dependency order."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    unpartitioned = [a for a in assets if a.partitions_def is None]
    return [("stores", unpartitioned, None)]


def main() -> int:
    from marketdata_assets.definitions import defs as load_defs

    defs = load_defs()
    resources = defs.resources or {}
    failed = 0
    with dg.DagsterInstance.get() as instance:
        for label, assets, partition_key in plan(defs):
            started = time.monotonic()
            result = dg.materialize(assets, instance=instance, resources=resources, partition_key=partition_key,
                                    tags={"marketdata/launched_by": "make run"}, raise_on_error=False)
            keys = sorted(key.to_user_string() for a in assets for key in a.keys)
            status = "ok" if result.success else "FAILED"
            print(f"[{status}] {label}: {len(keys)} assets ({', '.join(keys)}) in {time.monotonic() - started:.1f} s, "
                  f"run {result.run_id}", flush=True)
            failed += not result.success
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
