"""The collector behind: frames that waited too long are dropped whole, and every drop is on record.

- `shed`: a batch off the frame queue loses its data frames received more than `max_lag_s` ago (the
  oldest go first, so what is processed is fresh again; markers are never dropped, nor any frame that
  is not a stream's data: an acknowledgement, a refusal to retry, a heartbeat to answer), and gets an
  `overflow` marker (cause `lag`) where each connection's first dropped frame was. A machine that
  cannot keep up loses frames instead of falling minutes behind.
- What goes first: what a snapshot rebuilds (book diffs, tops, tickers). A frame of a trade channel
  (`is_trade`: one of the venue's `trade_marks` near its start) is kept until it waited
  `TRADE_LAG_FACTOR` times the bound, and at the reader it may take a quarter more of the queue than
  the rest (connection.py), so a busy machine loses books before it loses trades.
- `TradeGaps`: after a drop (an `overflow` marker: the queue full at the reader, or the lag bound),
  each instrument's next trade tells which trade ids were lost, those between the last one before
  and it: a `gap` marker of its trade channel (cause `overflow`, `first_id`, `last_id`), the ids
  the hourly load finds missing and `live_trade_id_refill` fetches from the venue.
"""

from __future__ import annotations

OVERFLOW = "overflow"
TRADE_LAG_FACTOR = 3  # a trade frame is shed only once it waited this many times the lag bound
TRADE_HEAD = 120  # characters of a frame's start where a venue names its channel


def is_trade(text: str, trade_marks: tuple[str, ...]) -> bool:
    """Whether a frame is of a trade channel (the venue's `trade_marks`, one near its start)."""
    head = text[:TRADE_HEAD]
    return any(mark in head for mark in trade_marks)


def shed(
    batch: list[tuple],
    cutoff_ns: int,
    now_ns: int,
    data_prefix: str | None = None,
    trade_marks: tuple[str, ...] = (),
    trade_cutoff_ns: int | None = None,
) -> tuple[list[tuple], int]:
    """(the batch without its frames received before `cutoff_ns`, with an `overflow` marker per
    connection in place of its first dropped frame; how many frames were dropped). Items are the
    frame queue's: ("frame", conn, recv_ns, text) or ("marker", conn, recv_ns, (kind, details)). With
    the venue's `data_prefix`, only frames that begin with it are dropped (one that does not is kept:
    a control frame, or data spelled otherwise, processed late). With `trade_cutoff_ns` (older than
    `cutoff_ns`), a trade frame is dropped only if received before it; each marker counts its trades."""
    kept: list = []
    drops: dict[
        str, list[int]
    ] = {}  # conn -> [frames, first recv ns, last recv ns, index of its marker, trades]
    for item in batch:
        if (
            item[0] == "frame"
            and item[2] < cutoff_ns
            and (data_prefix is None or item[3].startswith(data_prefix))
        ):
            trade = bool(trade_marks) and is_trade(item[3], trade_marks)
            if trade and trade_cutoff_ns is not None and item[2] >= trade_cutoff_ns:
                kept.append(
                    item
                )  # books and tops go first: a snapshot rebuilds them, nothing rebuilds a trade
                continue
            drop = drops.get(item[1])
            if drop is None:
                drop = drops[item[1]] = [0, item[2], item[2], len(kept), 0]
                kept.append(item)  # replaced by the marker below
            drop[0] += 1
            drop[2] = item[2]
            drop[4] += trade
        else:
            kept.append(item)
    for conn, (count, first_ns, last_ns, at, trades) in drops.items():
        details = {
            "dropped": count,
            "cause": "lag",
            "first_ns": first_ns,
            "last_ns": last_ns,
            "waited_s": round((now_ns - first_ns) / 1e9, 3),
            **({"trades": trades} if trade_marks else {}),
        }
        kept[at] = ("marker", conn, first_ns, (OVERFLOW, details))
    return kept, sum(drop[0] for drop in drops.values())


class TradeGaps:
    """Each instrument's last trade id (`seen`, per trade frame), and after a drop (`dropped`) the
    trade-id range each instrument lost (`after`, at its next trade)."""

    def __init__(self):
        self.last: dict[str, int | None] = {}  # instrument -> id (seq) of its last trade processed
        self.watch: dict[str, int | None] = {}  # instrument -> its last id before an unresolved drop

    def dropped(self) -> None:
        """Frames were dropped here: every instrument's next trade is checked against its last one."""
        for instrument, seq in self.last.items():
            self.watch.setdefault(instrument, seq)

    def after(self, instrument: str, first_seq: int | None) -> tuple[int, int] | None:
        """(first, last) trade id lost before `first_seq`, the instrument's first trade after a drop
        (None: nothing lost, or ids that do not count up by one)."""
        before = self.watch.pop(instrument, None)
        if before is None or first_seq is None or first_seq <= before + 1:
            return None
        return before + 1, first_seq - 1


__all__ = ["OVERFLOW", "TRADE_LAG_FACTOR", "TradeGaps", "is_trade", "shed"]
