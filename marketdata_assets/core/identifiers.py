"""Validation of names that end up in SQL text or storage paths.

User data never becomes SQL text: values travel as query parameters. Identifiers (tables,
databases, collections) and partition keys can't be parameters, so they are checked against
strict patterns here and quoted by the caller's driver helper (psycopg.sql.Identifier, ClickHouse
backticks) on top.
"""

from __future__ import annotations

import re
from datetime import date

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MONTH_KEY = re.compile(r"^(\d{4})-(\d{2})$")
_DAY_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Instruments, as their venues name them: BTCUSDT, BTC-USDT-SWAP, 600000.SH, ETH-PERPETUAL, VOD.L
_INSTRUMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


def matching(value, pattern: re.Pattern, what: str, expected: str) -> str:
    """`value` if it is a string `pattern` matches; else a ValueError naming it as `what`, and what was
    `expected`."""
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"invalid {what} {value!r}: expected {expected}")
    return value


def sql_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain SQL identifier (letters, digits, underscore; <= 63 chars)."""
    return matching(
        name,
        _IDENTIFIER,
        what,
        "letters, digits and underscores, starting with a letter or underscore, at most 63 characters",
    )


def clickhouse_database(name: str) -> str:
    """A validated ClickHouse database name, back-quoted for SQL text: `market`."""
    return f"`{sql_identifier(name, 'ClickHouse database')}`"


def qualified_name(name: str, what: str = "table") -> str:
    """`schema.table` or `table`, each part a valid identifier."""
    parts = name.split(".") if isinstance(name, str) else [name]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"invalid {what} {name!r}: expected name or schema.name")
    for part in parts:
        sql_identifier(part, what)
    return name


def month_partition_key(key: str) -> date:
    """'2024-03' -> date(2024, 3, 1); anything else raises with the key in the message."""
    match = _MONTH_KEY.match(key) if isinstance(key, str) else None
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"invalid month partition key {key!r}: expected YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def day_partition_key(key: str) -> date:
    """'2024-03-05' -> date(2024, 3, 5)."""
    if isinstance(key, str) and _DAY_KEY.match(key):
        try:
            return date.fromisoformat(key)
        except ValueError:
            pass
    raise ValueError(f"invalid day partition key {key!r}: expected YYYY-MM-DD")


def instrument_key(instrument: str) -> str:
    """An instrument name usable as a partition key and a file name (no '|', ',', '[', ']', '/')."""
    return matching(instrument, _INSTRUMENT, "instrument", "letters, digits, '.', '_' or '-' (at most 64)")
