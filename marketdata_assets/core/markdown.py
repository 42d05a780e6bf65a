"""Markdown tables for materialization metadata (Dagster renders Markdown metadata).

Numbers are shown as stored: a float prints its shortest exact form (a close of 0.001455 reads
0.001455, not 0.0015), never rounded to a fixed number of decimals and never in exponent form. A table is a
`Markdown` string: whoever turns plain metadata into Dagster's (defs/_common/checks.py) renders it as
Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any


class Markdown(str):
    """Text to render as Markdown (a table, a code block), not as plain text."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def number(value: float) -> str:
    """A float at full precision with thousands separators: 1234567.5 -> '1,234,567.5', 4e-05 -> '0.00004'."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return f"{int(value):,}"
    return f"{Decimal(repr(value)):,f}"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 200) -> Markdown:
    """A Markdown table; past `limit` rows a last line says how many were left out."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    extra = 0
    for n, row in enumerate(rows):
        if n >= limit:
            extra += 1
            continue
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if extra:
        lines.append(f"\n… {extra:,} more rows")
    return Markdown("\n".join(lines))


def prose(text: str) -> str:
    """Text for a Markdown page: `<` outside code spans escaped, so `<state dir>` is shown, not read as
    HTML."""
    parts = text.split("`")
    return "`".join(part if n % 2 else part.replace("<", "&lt;") for n, part in enumerate(parts))
