"""Renaming stored columns of a ClickHouse table by rebuilding it, once, when a store of the previous
version is opened (``loads.kind`` -> ``dataset``, ``ingest_log.provider`` / ``kind`` -> ``source`` /
``dataset``): ClickHouse cannot rename a column of the sorting key. stores.clickhouse.tables declares
the renames and runs :func:`rename_columns` from ``ensure_tables``; and the dataset columns added since a
store was made (:func:`add_columns`, stores.clickhouse.tables ``ADDED_SINCE``).

Steps, concurrency and recovery: docs/datasets.md, "Renaming stored columns by a rebuild".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import DatabaseError

from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier

log = logging.getLogger(__name__)

TABLE_ALREADY_EXISTS = 57  # ClickHouse's error code
CATCH_UP_ROUNDS = 5


class MigrationBlocked(RuntimeError):
    """The table still has the previous version's columns and cannot be migrated now (nothing changed)."""


@dataclass(frozen=True)
class Rename:
    """Columns of one table to rename: ``columns`` old name -> new name; ``identity``: the new names of
    the columns that tell two rows apart (the catch-up and the check compare rows by them), or with a
    ``version`` (a ReplacingMergeTree's), its sorting key."""

    table: str
    columns: dict
    identity: tuple
    version: str | None = None  # a ReplacingMergeTree's version column: identity is then its key
    tag: str = "dataset_columns"

    @property
    def staging(self) -> str:
        return sql_identifier(f"{self.table}_{self.tag}_new", "table")

    @property
    def kept(self) -> str:
        return sql_identifier(f"{self.table}_before_{self.tag}", "table")

    def is_old(self, columns) -> bool:
        return any(old in columns for old in self.columns)

    def source_of(self, new: str) -> str:
        """The old table's column holding the new table's column ``new``."""
        return next((old for old, renamed in self.columns.items() if renamed == new), new)


@dataclass(frozen=True)
class Moved:
    """What :func:`rename_columns` did to one table."""

    table: str
    copied: int  # rows copied before the swap
    caught_up: int  # rows that reached the old table after the copy, copied after the swap
    rows_before: int  # rows of the old table at the end (kept as Rename.kept)
    rows_after: int  # rows of the new table at the end
    seconds: float

    def summary(self, rename: Rename) -> str:
        names = ", ".join(f"{old} -> {new}" for old, new in rename.columns.items())
        return (
            f"{self.table} ({names}): {self.copied:,} rows copied, {self.caught_up:,} caught up after the "
            f"swap, {self.rows_after:,} rows now ({self.rows_before:,} in {rename.kept}, kept), "
            f"{self.seconds:.1f} s"
        )


def columns_of(client, database: str, tables) -> dict[str, list[str]]:
    """{table: its column names in order} of those of ``tables`` that exist."""
    found: dict[str, list[str]] = {}
    for table, name in client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} AND table IN "
        "{tables:Array(String)} ORDER BY table, position",
        parameters={"db": database, "tables": list(tables)},
    ).result_rows:
        found.setdefault(table, []).append(name)
    return found


def add_columns(client, database: str, added) -> list[str]:
    """Columns declared after their table's first release, added to the tables of a store created before
    (``added``: (table, column, its declared type, the column it follows), in declaration order): a
    metadata-only ALTER (no part is rewritten; the rows of before read the column's default, null), before
    the views that name it are made. A table that does not exist yet is left alone (made whole later).
    Returns ``table.column`` of each column added."""
    db = clickhouse_database(database)
    found = columns_of(client, database, {table for table, *_ in added})
    done = []
    for table, column, ctype, after in added:
        if table in found and column not in found[table]:
            client.command(
                f"ALTER TABLE {db}.`{table}` ADD COLUMN IF NOT EXISTS `{column}` {ctype} AFTER `{after}`"
            )
            found[table].append(column)
            done.append(f"{table}.{column}")
    if done:
        log.warning("ClickHouse %s: added the column(s) %s", database, ", ".join(done))
    return done


def rename_columns(
    client,
    database: str,
    rename: Rename,
    create: Callable[[str], str],
    after_swap: Callable[[], None],
    wait_s: float = 600.0,
) -> Moved | None:
    """Rebuild ``rename.table`` with the new column names if it still has an old one (docs/datasets.md,
    "Renaming stored columns by a rebuild").
    ``create(name)``: the CREATE TABLE statement (no IF NOT EXISTS) of the new schema under ``name``.
    Returns what was moved, or None (nothing to do, or another process did it)."""
    table, staging, kept = rename.table, rename.staging, rename.kept
    deadline = time.monotonic() + wait_s
    while True:
        found = columns_of(client, database, (table, staging, kept))
        if table not in found or not rename.is_old(found[table]):
            if staging in found:
                log.warning(_leftover(database, rename, found[staging]))
            return None
        if staging not in found:
            if kept in found:
                raise MigrationBlocked(
                    f"{database}.{table} has the columns of the previous version but "
                    f"{database}.{kept} exists already: rename or drop it, then run again"
                )
            try:
                client.command(create(staging))
            except DatabaseError as error:
                if getattr(error, "code", None) != TABLE_ALREADY_EXISTS and "TABLE_ALREADY_EXISTS" not in str(
                    error
                ):
                    raise
            else:
                return _migrate(client, database, rename, after_swap)
        if time.monotonic() > deadline:
            raise MigrationBlocked(
                f"{database}.{table} still has the columns of the previous version after {wait_s:.0f} s and "
                f"{database}.{staging} exists: another process is migrating it, or a migration was killed "
                f"before its swap ({table} is untouched then: DROP TABLE {database}.{staging} and run again)"
            )
        time.sleep(0.2)


def _leftover(database: str, rename: Rename, columns) -> str:
    if rename.is_old(columns):
        return (
            f"{database}.{rename.staging} holds {rename.table} of the previous version: a migration of its "
            "columns is finishing, or was interrupted after its swap; if no process is migrating, finish it "
            "with stores.clickhouse.tables.finish_column_renames (copies its missing rows, renames it "
            f"{rename.kept})"
        )
    return (
        f"{database}.{rename.staging} is a copy of {rename.table} left by an interrupted migration (the "
        f"table is migrated); if no process is migrating, DROP TABLE {database}.{rename.staging}"
    )


def _count(client, db: str, table: str, where: str = "") -> int:
    return int(client.command(f"SELECT count() FROM {db}.`{table}`{' WHERE ' + where if where else ''}") or 0)


def _migrate(client, database: str, rename: Rename, after_swap: Callable[[], None]) -> Moved | None:
    """Steps 2-3 of docs/datasets.md, "Renaming stored columns by a rebuild", with the claim
    (``rename.staging``) held, then :func:`finish_rename`."""
    db, table, staging = clickhouse_database(database), rename.table, rename.staging
    started = time.monotonic()
    try:
        found = columns_of(client, database, (table, staging))
        if not rename.is_old(found.get(table, ())):  # another process finished between our look and claim
            client.command(f"DROP TABLE IF EXISTS {db}.`{staging}`")
            return None
        targets, sources = _column_lists(rename, found[staging], found[table])
        client.command(
            f"INSERT INTO {db}.`{staging}` ({', '.join(f'`{c}`' for c in targets)}) "  # every row as it is
            f"SELECT {', '.join(f'`{c}`' for c in sources)} FROM {db}.`{table}` "
            "SETTINGS optimize_on_insert = 0"
        )
        copied = _count(client, db, staging)
        client.command(f"EXCHANGE TABLES {db}.`{table}` AND {db}.`{staging}`")
    except BaseException:
        try:
            if rename.is_old(columns_of(client, database, (table,)).get(table, ())):
                client.command(
                    f"DROP TABLE IF EXISTS {db}.`{staging}`"
                )  # our partial copy: the table is untouched
        except Exception as cleanup:  # noqa: BLE001 - the original error is the one raised
            log.warning("ClickHouse %s: could not drop the partial copy %s: %s", database, staging, cleanup)
        raise
    after_swap()
    return finish_rename(client, database, rename, copied, started)


def _column_lists(rename: Rename, new_columns, old_columns) -> tuple[list[str], list[str]]:
    """(the new table's columns, the old table's columns holding them); a column the old table lacks
    (added to the schema after it was created) is left out: it takes its default."""
    new = [c for c in new_columns if rename.source_of(c) in set(old_columns)]
    return new, [rename.source_of(c) for c in new]


def _missing(db: str, rename: Rename, sources: list[str]) -> str:
    """SELECT of the old table's (``rename.staging``) rows that the new one lacks: by ``identity``, or
    with a ``version``, the rows of the old table's FINAL state whose key has no row of the same or a
    later version in the new table (a ReplacingMergeTree's merges may drop a superseded copy)."""
    old, new = f"{db}.`{rename.staging}`", f"{db}.`{rename.table}`"
    if rename.version is None:
        identity = ", ".join(f"`{c}`" for c in rename.identity)
        return (
            f"SELECT {', '.join(f'`{c}`' for c in sources)} FROM {old} "
            f"WHERE ({', '.join(f'`{rename.source_of(c)}`' for c in rename.identity)}) NOT IN "
            f"(SELECT {identity} FROM {new})"
        )
    key, version = ", ".join(f"`{c}`" for c in rename.identity), rename.version
    on = " AND ".join(f"o.`{rename.source_of(c)}` = n.`{c}`" for c in rename.identity)
    return (
        f"SELECT {', '.join(f'o.`{c}`' for c in sources)} FROM {old} AS o FINAL "
        f"LEFT JOIN (SELECT {key}, max(`{version}`) AS _newest FROM {new} GROUP BY {key}) AS n ON {on} "
        f"WHERE n._newest IS NULL OR o.`{version}` > n._newest SETTINGS join_use_nulls = 1"
    )


def finish_rename(
    client, database: str, rename: Rename, copied: int = 0, started: float | None = None
) -> Moved:
    """Steps 4-6 of docs/datasets.md, "Renaming stored columns by a rebuild": the new table is
    ``rename.table`` and the old one
    ``rename.staging``. Also what finishes a migration killed after its swap, by hand, when no other
    process is migrating: it copies what is missing and renames the old table to ``rename.kept``."""
    db, table, old = clickhouse_database(database), rename.table, rename.staging
    started = time.monotonic() if started is None else started
    found = columns_of(client, database, (table, old))
    if rename.is_old(found.get(table, ())) or not rename.is_old(found.get(old, ())):
        raise MigrationBlocked(
            f"{database}.{old} is not the previous version of {database}.{table}: nothing to finish"
        )
    targets, sources = _column_lists(rename, found[table], found[old])
    missing_sql = _missing(db, rename, sources)
    added = 0
    for _ in range(CATCH_UP_ROUNDS):
        seen = _count(client, db, old)
        missing = int(client.command(f"SELECT count() FROM ({missing_sql})") or 0)
        if missing:
            client.command(
                f"INSERT INTO {db}.`{table}` ({', '.join(f'`{c}`' for c in targets)}) {missing_sql}"
            )
            added += missing
        elif _count(client, db, old) == seen:
            break
    else:
        missing = int(client.command(f"SELECT count() FROM ({missing_sql})") or 0)
        if missing:
            raise MigrationBlocked(
                f"{missing:,} rows of {database}.{old} ({table} of the previous version) are still missing "
                f"from {table} after {CATCH_UP_ROUNDS} catch-up rounds: a process of the previous version "
                "is still writing into it. Stop it, then call stores.clickhouse.tables.finish_column_renames"
            )
    client.command(f"RENAME TABLE {db}.`{old}` TO {db}.`{rename.kept}`")
    moved = Moved(
        table,
        copied,
        added,
        _count(client, db, rename.kept),
        _count(client, db, table),
        round(time.monotonic() - started, 3),
    )
    log.warning("ClickHouse %s: renamed stored columns of %s", database, moved.summary(rename))
    return moved
