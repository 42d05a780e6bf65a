import json, pytest
from tests.live.test_venues import replays, run, records, VENUES, WAIT_S

@pytest.mark.parametrize("i", range(12))
def test_repro(i, tmp_path, nats_url, stream_spec):
    venue = "DERIBIT"
    stack, ws = replays(venue)
    with stack:
        async def body(c, store):
            await c.stats.wait_until(lambda s: s.rollovers >= 2, WAIT_S)
            ws.pause()
            await c.stats.wait_until(lambda s: not c.outbox and s.published + s.duplicates == s.trades, WAIT_S)
            p = c.stats.published
            n = await store.message_count(stream_spec.name, f"{stream_spec.subjects[0].split('.')[0]}.trades.>")
            return n, p, c.queue.qsize()
        stats, (count, pub_at, q) = run(venue, ws, body, tmp_path, nats_url, stream_spec, rollover_s=0.5)
    trades = VENUES[venue][4]
    unique = {(name, json.dumps(t, sort_keys=True)) for name in VENUES[venue][2]
              for r in records(tmp_path, venue, trades.format(name)) if "d" in r
              for t in json.loads(r["d"])["params"]["data"]}
    print("RESULT", i, "count", count, "pub_at", pub_at, "published", stats.published, "unique", len(unique), "trades", stats.trades, "dups", stats.duplicates, "q", q, "fail", stats.publish_failures)
    assert count == stats.published == len(unique)
