"""One venue's universe shared over several collectors: each instrument to exactly one part by a stable
hash of its name (the same in every process and on every machine), the channels carrying every
instrument's events (OKX `SWAP@liquidation-orders`, Binance USD-M `!forceOrder@arr`) to the first part.
A new listing lands in one part without moving the others' instruments."""

from __future__ import annotations

import zlib
from typing import NamedTuple


class Part(NamedTuple):
    index: int = 0  # which part, from 0
    count: int = 1  # of how many

    @classmethod
    def parse(cls, text: str | None) -> Part:
        """`K/N` (K from 1 to N) as the CLI and COLLECTOR_PART spell it; empty: the whole universe."""
        if not text or not text.strip():
            return cls()
        k, slash, n = text.strip().partition("/")
        if not slash or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
            raise ValueError(f"collector part {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
        return cls(int(k) - 1, int(n))

    @property
    def shared(self) -> bool:
        """Whether this part carries the channels of every instrument."""
        return self.index == 0

    def owns(self, instrument: str) -> bool:
        return self.count == 1 or zlib.crc32(instrument.encode()) % self.count == self.index

    def take(self, instruments: list[str]) -> list[str]:
        """This part's share of `instruments`, in their order."""
        return list(instruments) if self.count == 1 else [name for name in instruments if self.owns(name)]

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
