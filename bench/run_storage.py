"""What a run pays Dagster's Postgres storage: the same small run (assets writing their events),
in an instance as Dagster opens it (a connection per query) and as a `marketdata` command opens it
(orchestration.instance: one kept connection), interleaved round by round.

`python -m bench run_storage [--rounds N] [--assets K]`: on the local stack's Postgres (database
`dagster_bench`, created when missing). Per run: wall time, this process's CPU, connections opened.
The server's own CPU (a backend started per connection) is not in the process figure; on a server
that asks for a password each connection is also a SCRAM exchange on both sides (not measured here:
the stack trusts local connections).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import contextmanager

import dagster as dg

DB = "dagster_bench"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # the events are still stored


def workload(assets: int) -> list:
    def make(index: int):
        @dg.asset(name=f"bench_asset_{index}")
        def _asset(context):  # no annotations: this module's are strings (__future__)
            context.log.info("written")
            return dg.MaterializeResult(metadata={"rows": index})

        return _asset

    return [make(i) for i in range(assets)]


@contextmanager
def dagster_plain():
    with dg.DagsterInstance.get() as instance:
        yield instance


def one_run(opener, assets: list) -> dict:
    from sqlalchemy import event

    from marketdata_assets.orchestration.instance import postgres_engines

    with opener() as instance:
        opened = [0]
        for engine in postgres_engines(instance):
            event.listen(engine, "connect", lambda *_: opened.__setitem__(0, opened[0] + 1))
        wall, cpu = time.perf_counter(), time.process_time()
        assert dg.materialize(assets, instance=instance, run_config=QUIET).success
        return {
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "connections": opened[0],
        }


def ensure_database() -> None:
    import psycopg

    from marketdata_assets.core import settings

    with psycopg.connect(
        host=settings.get("DAGSTER_PG_HOST"),
        port=settings.get("DAGSTER_PG_PORT"),
        user=settings.get("DAGSTER_PG_USER"),
        password=settings.get("DAGSTER_PG_PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB}"')  # DB is this module's constant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench run_storage")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--assets", type=int, default=30)
    args = parser.parse_args(argv if argv is not None else [])
    from marketdata_assets.core import settings
    from marketdata_assets.orchestration.instance import command_instance

    settings.apply_defaults()
    os.environ["DAGSTER_PG_DB"] = DB
    ensure_database()
    assets = workload(args.assets)
    openers = {
        "a connection per query (Dagster)": dagster_plain,
        "one kept connection (marketdata)": command_instance,
    }
    samples: dict[str, list[dict]] = {name: [] for name in openers}
    one_run(command_instance, assets)  # the tables created, the imports warm
    for _ in range(args.rounds):
        for name, opener in openers.items():
            samples[name].append(one_run(opener, assets))
    print(
        f"a run of {args.assets} assets on the stack's Postgres, median of {args.rounds} interleaved rounds:"
    )
    for name, runs in samples.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("wall", "cpu", "connections")}
        print(
            f"  {name:34} wall {median['wall']:6.2f} s   cpu {median['cpu']:6.2f} s   "
            f"connections {median['connections']:5.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
