"""How a source's plain dump CSV maps onto a dataset's table when the store reads the file itself
(ClickHouse's file(): the fastest load path measured, docs/ticks.md). A source declares its
profiles (sources/binance_vision/dumps.py); the store's writer runs them (stores/clickhouse/writer.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class DumpCsvProfile:
    """How the engine's own CSV reader maps a source's dump files onto a dataset's table."""

    dataset: str
    name_pattern: re.Pattern  # groups: instrument, day
    schema: str  # the file's columns for file(..., CSV, schema); `required` ones Nullable
    select: dict  # table column -> SQL over the file's columns
    # Columns every row must have: a short line fails its file (the engine's reader would otherwise
    # fill the missing trailing columns with defaults, a missing is_buyer_maker becoming a buy).
    required: tuple[str, ...] = ()
    # A non-negative integer column one-to-one with the dataset's key (a trade's `seq` with its
    # `trade_id`): its repeats are counted as a bitmap's, not by hashing the key's text.
    unique_ids: str = ""
