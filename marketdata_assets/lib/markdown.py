"""Markdown tables for materialization metadata (Dagster renders Markdown metadata)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 200) -> str:
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
    return "\n".join(lines)
