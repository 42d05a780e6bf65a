"""The collector's whole path over fixed bytes, deterministic: a socket's reads (bench live_capture's
Binance spot frames with faults among them) through the real `WsClient`, `Processor`, books, landing and
trade batches, each read stamped with a fixed receive time, the books' REST snapshots served from the
frames' own market and awaited after each read. `python -m tests.support.collector_path` prints what came
out as JSON: every landing file's lines (a marker's own clock zeroed), every message sealed for JetStream,
and the counters. Run once per `MARKETDATA_COMPILED` (core/compiled.py picks at import), the two must be
the same (tests/ingest/live/test_compiled_identity.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.live_path import offline_collector, opened_client
from bench.live_sender import DEPTH, TRADE, Market, frame

INSTRUMENTS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
T0_NS = 1_764_388_800 * 10**9 + 3_600 * 10**9 - 3 * 10**9  # three seconds before an hour turns
READ = 4096  # bytes a read brings (a frame is often cut across two)


def faulty_stream(market: Market) -> bytes:
    """The market's frames with what a feed also brings: a depth diff that skips ids (a gap, then a
    resync from REST), a trade whose price is a number, a frame that is no JSON, an object over two
    lines, a ping, a message in two frames, an unknown stream, a trade with an id jump."""
    name, parts = INSTRUMENTS[0], []
    for k in range(6):
        parts.append(market.render(INSTRUMENTS, 900))
        if k == 1:
            market.update_ids[name] += 50  # the next diff of BTCUSDT leaves ids out
        if k == 2:
            at_ms = T0_NS // 10**6
            text = TRADE % ("ethusdt", at_ms, "ETHUSDT", 7, "95000.1", "0.5", at_ms, "false")
            parts.append(frame(text.replace('"p":"95000.1"', '"p":95000.1').encode()))
            parts.append(frame(b'{"stream":"btcusdt@trade","data":'))  # cut short: no JSON
            parts.append(frame(b'{"stream":"solusdt@trade",\n"data":{"e":"trade"}}'))
            parts.append(frame(b"", opcode=0x9))  # a ping
            parts.append(bytes((0x01, 5)) + b'{"res' + bytes((0x80, 22)) + b'ult":null,"id":1}     ')
            parts.append(frame((DEPTH % ("xyzusdt", 1, "XYZUSDT", 1, 2, "[]", "[]")).encode()))
        if k == 3:
            market.trade_ids[INSTRUMENTS[1]] += 1000  # ids jump (no drop here: kept as they come)
    return b"".join(parts)


class _Snapshots:
    """The books' REST snapshots: the market's current one."""

    def __init__(self, market: Market):
        self.market = market

    async def fetch(self, instrument: str, limit: int) -> dict:
        return self.market.snapshot(instrument)

    async def aclose(self) -> None:
        pass


async def run(scratch: Path) -> dict:
    from marketdata_assets.core import compiled
    from marketdata_assets.stores.landing import read_lines

    clock = iter(range(T0_NS, T0_NS + 10**15, 10_000_000))  # each look at the clock 10 ms on: the hour turns
    time.time_ns = lambda: next(clock)  # the market's times and ids, each read's stamp, the snapshots'
    market = Market(INSTRUMENTS, 0.25, seed=11)
    # sealed at the end, not by the loop's clock
    collector = offline_collector(
        market, INSTRUMENTS, scratch, 100, trade_batch_s=3600.0, trade_batch_max_s=3600.0
    )
    writer = collector.writer
    collector.books.rest = _Snapshots(market)
    data = faulty_stream(market)
    items: list[tuple] = []
    client = opened_client(
        lambda text, ns: items.append(("frame", "c1", ns, text)),
        lambda texts, ns: items.extend(("frame", "c1", ns, text) for text in texts),
    )
    books = collector.books
    for at in range(0, len(data), READ):
        client.data_received(data[at : at + READ])
        await collector.processing.process(items)
        items.clear()
        while books.snapshot_tasks:
            await asyncio.gather(*books.snapshot_tasks)
    collector.publisher.seal_trades()
    writer.close()
    landing = {}
    for path in sorted(scratch.rglob("*.zst")):
        records = [json.loads(line) for line in read_lines(path)]
        landing[str(path.relative_to(scratch))] = [{**r, "t": 0} if "m" in r else r for r in records]
    stats = collector.stats
    return {
        "compiled": sorted(name for name, on in compiled.active.items() if on),
        "landing": landing,
        "messages": [
            [where, msg_id, payload.decode()] for where, msg_id, payload, _ in collector.publisher.outbox
        ],
        "sent": [[data[0], data[1] & 0x7F] for data in client.transport.sent],  # opcode, length (unmasked)
        "counts": {
            "frames": stats.frames,
            "acks": stats.acks,
            "trades": stats.trades,
            "gaps": stats.gaps,
            "snapshots": stats.snapshots,
            "bad_frames": stats.bad_frames,
            "refused": stats.refused,
            "messages": stats.messages,
        },
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        print(json.dumps(asyncio.run(run(Path(scratch)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
