"""The raw landing files: hour rollover, a killed writer's file recovered, a torn last line, and
several venues and channels written at once. Real files, a real killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from marketdata_assets.core.landing_files import LinkRefused
from marketdata_assets.stores.landing import (
    BAD_CHANNEL,
    LandingWriter,
    closed_files,
    hour_key,
    read_file,
    read_lines,
    recover,
)
from marketdata_assets.stores.landing import writer as writer_module
from marketdata_assets.stores.landing.writer import HOUR_NS, PART, READY, SUFFIX

H0 = 1_790_000_000 * 1_000_000_000 // HOUR_NS * HOUR_NS  # the start of some UTC hour


def summary(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_hour_rollover_closes_the_hour_and_a_reader_never_sees_a_part(tmp_path):
    writer = LandingWriter(tmp_path, "BINANCE")
    for k in range(5):
        writer.frame("btcusdt@trade", "c1", json.dumps({"t": k}), H0 + k)
    assert closed_files(tmp_path, "BINANCE", "btcusdt@trade") == []  # open: only a .part exists
    writer.marker("btcusdt@trade", "c1", "disconnect", H0 + HOUR_NS - 1, reason="dropped")
    writer.frame("btcusdt@trade", "c2", '{"t":5}', H0 + HOUR_NS)  # the next hour ends the first:
    assert closed_files(tmp_path, "BINANCE", "btcusdt@trade") == []  # flushed, closed by the next tick
    assert [p.name for p in writer.tick(H0 + HOUR_NS + 1)] == [f"{hour_key(H0)}.{H0}{SUFFIX}"]
    first = closed_files(tmp_path, "BINANCE", "btcusdt@trade")
    assert [p.name.split(".")[0] for p in first] == [hour_key(H0)] == ["2026-09-21T14Z"]
    records = read_file(first[0])
    assert [r.get("d") for r in records[:5]] == [json.dumps({"t": k}) for k in range(5)]
    assert records[5]["m"] == "disconnect" and records[5]["x"] == {"reason": "dropped"}
    assert summary(first[0])["frames"] == 5 and summary(first[0])["markers"] == {"disconnect": 1}

    assert writer.tick(H0 + HOUR_NS + 10) == []  # the second hour has not ended
    closed = writer.tick(H0 + 2 * HOUR_NS)
    assert len(closed) == 1 and read_file(closed[0]) == [{"t": H0 + HOUR_NS, "c": "c2", "d": '{"t":5}'}]
    assert not list(tmp_path.rglob(f"*{PART}"))


def test_a_batch_of_frames_lands_by_channel_and_hour_and_says_what_it_landed(tmp_path):
    """`frames`: a batch whose trade channel crosses an hour (and whose clock steps back over it once)
    lands each frame in its own hour's file, in order; `landed` counts each channel's frames of `frames`."""
    writer = LandingWriter(tmp_path, "BINANCE")
    trade, depth = "btcusdt@trade", "btcusdt@depth"
    times = [H0 + HOUR_NS - 2, H0 + HOUR_NS - 1, H0 + HOUR_NS, H0 + HOUR_NS - 1, H0 + HOUR_NS + 5]
    batch = [(trade, "c1", f'{{"k":{k}}}', t) for k, t in enumerate(times)]
    batch.insert(2, (depth, "c2", '{"d":"\\"}', H0 + 7))
    writer.frames(batch)
    writer.frame(depth, "rest", '{"snapshot":1}', H0 + 8)  # one frame alone (a REST snapshot): not counted
    assert writer.landed == {trade: 5, depth: 1}
    writer.close()
    files = closed_files(tmp_path, "BINANCE", trade)
    by_hour = {}
    for path in files:
        by_hour.setdefault(path.name.split(".")[0], []).extend(r["d"] for r in read_file(path))
    assert by_hour == {
        hour_key(H0): ['{"k":0}', '{"k":1}', '{"k":3}'],
        hour_key(H0 + HOUR_NS): ['{"k":2}', '{"k":4}'],
    }
    assert sum(summary(p)["frames"] for p in files) == 5
    [depth_file] = closed_files(tmp_path, "BINANCE", depth)
    assert read_file(depth_file) == [
        {"t": H0 + 7, "c": "c2", "d": '{"d":"\\"}'},
        {"t": H0 + 8, "c": "rest", "d": '{"snapshot":1}'},
    ]
    assert summary(depth_file)["frames"] == 2


def test_a_json_frame_lands_as_sent_and_every_frame_reads_back_as_its_text(tmp_path):
    """A frame that is a JSON object on one line is embedded as sent (`r`: the line is JSON a tool reads
    in one decode); any other is written as a JSON string (`d`): not an object, a newline in it, a frame
    on the collector's channel of frames that are not JSON, and any frame `frame` lands alone. Each
    reads back as its text, byte for byte, from a closed file and from what a crash left (recovered)."""
    as_sent = [
        '{"e":"trade","p":"0.00000255","q":"1E-3","s":"\\u00e9 \\"x\\" \\\\"}',
        '{ "a" : [ ] ,"b":null }',
        '{"é":"ü ✓ 𝄞","r":"}","t":1}',
        "{}",
    ]
    escaped = ["pong", '{"a":\n1}', "[1,2]", "", '"{}"', " {}", '{"a":1} ']
    writer = LandingWriter(tmp_path / "live", "OKX")
    channel = "books-BTC-USDT"
    batch = [(channel, "1-2", text, H0 + k) for k, text in enumerate(as_sent + escaped)]
    batch.append((BAD_CHANNEL, "1-2", '{"a":1}}', H0 + 50))
    writer.frames(batch)
    writer.frame(channel, "rest", '{"alone":true}', H0 + 60)
    writer.flush()
    crashed = tmp_path / "crashed" / "OKX"
    for part in (tmp_path / "live").rglob(f"*{PART}"):  # a copy of the open files: no writer holds them
        (crashed / part.parent.name).mkdir(parents=True)
        (crashed / part.parent.name / part.name).write_bytes(part.read_bytes())
    recovered = {r.path.parent.name: r.path for r in recover(crashed.parent)}
    [closed] = [p for p in writer.close() if p.parent.name == channel]
    for path in (closed, recovered[channel]):
        lines = list(read_lines(path))
        assert [json.loads(line)["r"] for line in lines[: len(as_sent)]] == [json.loads(t) for t in as_sent]
        assert all(
            b'"d":' in line and b'"r":' not in line[:40] for line in lines[len(as_sent) : len(batch) - 1]
        )
        records = [record for record in read_file(path) if "m" not in record]
        assert [r["d"] for r in records] == as_sent + escaped + ['{"alone":true}']
        assert [r["t"] for r in records] == [H0 + k for k in range(len(batch) - 1)] + [H0 + 60]
        assert {r["c"] for r in records} == {"1-2", "rest"}
    [bad] = [p for p in writer.closed if p.parent.name == BAD_CHANNEL]
    assert read_file(bad) == [{"t": H0 + 50, "c": "1-2", "d": '{"a":1}}'}]
    assert b'"d":"{\\"a\\":1}}"' in b"".join(read_lines(bad))


def test_a_damaged_file_is_refused_naming_it(tmp_path):
    """Every zstd frame of a landing file carries its checksum: a flipped byte is an error naming the
    file (without it, the damaged lines were read as if they had been received so)."""
    writer = LandingWriter(tmp_path, "BINANCE")
    writer.frames(
        [("btcusdt@trade", "c1", f'{{"k":{k},"pad":"{"ab" * (k % 50)}"}}', H0 + k) for k in range(3000)]
    )
    [path] = writer.close()
    whole, errors = path.read_bytes(), []
    for at in range(len(whole) // 4, 3 * len(whole) // 4, len(whole) // 40):  # 20 places, each flipped alone
        data = bytearray(whole)
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=f"{path.name}: damaged zstd stream") as refused:
            read_file(path)
        errors.append(str(refused.value))
    assert any("checksum" in error for error in errors)  # some refused by the checksum alone


WRITER_SCRIPT = r"""
import sys, time
from pathlib import Path
from marketdata_assets.stores.landing import LandingWriter
writer = LandingWriter(Path(sys.argv[1]), "BINANCE", flush_lines=50)
k = 0
while True:
    writer.frame("btcusdt@trade", "c1", '{"k":%d,"pad":"%s"}' % (k, "x" * (k % 37)), time.time_ns())
    k += 1
    if k % 50 == 0:  # flush_lines reached: the 50 lines are with the OS
        print(k, flush=True)
"""


def test_a_killed_writer_leaves_a_part_that_the_next_start_closes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    flushed = 0
    while flushed < 2000:
        flushed = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = list(tmp_path.rglob(f"*{PART}"))
    assert len(parts) == 1

    writer = LandingWriter(tmp_path, "BINANCE")  # the next start
    recovered = writer.recover_partials()
    assert len(recovered) == 1 and recovered[0].lines >= flushed and recovered[0].bad_dropped == 0
    records = read_file(recovered[0].path)
    ks = [json.loads(r["d"])["k"] for r in records if "d" in r]
    assert (
        ks == list(range(len(ks))) and len(ks) == recovered[0].lines
    )  # nothing lost before the cut, no hole
    assert records[-1]["m"] == "crash" and records[-1]["x"]["lines"] == len(ks)
    assert summary(recovered[0].path)["recovered"] is True
    writer.frame("btcusdt@trade", "c9", '{"k":0}', records[-1]["t"] + 1)  # writing goes on in a new file
    writer.close()
    assert len(closed_files(tmp_path, "BINANCE", "btcusdt@trade")) == 2 and not list(
        tmp_path.rglob(f"*{PART}")
    )


def test_a_torn_last_line_is_dropped_and_counted(tmp_path):
    writer = LandingWriter(tmp_path, "OKX", flush_lines=10_000)
    line = '{"seq":%d,"pad":"' + "y" * 997 + '"}'
    for k in range(400):  # ~400 kB in one zstd frame: several 128 kB blocks
        writer.frame("books", "c1", line % k, H0 + k)
    writer.flush()
    part = next(tmp_path.rglob(f"*{PART}"))
    data = part.read_bytes()
    writer.files.clear()  # the process "dies" here: its file handle is dropped without closing
    part.write_bytes(data[:-200])  # the last block half written
    recovered = recover(tmp_path)
    assert len(recovered) == 1 and recovered[0].torn_dropped == 1
    records = read_file(recovered[0].path)
    seqs = [json.loads(r["d"])["seq"] for r in records if "d" in r]
    assert 0 < len(seqs) < 400 and seqs == list(range(len(seqs))) and recovered[0].lines == len(seqs)
    assert records[-1]["x"] == {"lines": len(seqs), "torn_dropped": 1, "bad_dropped": 0}


def test_venues_and_channels_written_at_once(tmp_path):
    def write(venue: str) -> None:
        with LandingWriter(tmp_path, venue, flush_lines=7) as writer:
            for k in range(600):
                writer.frame(f"ch{k % 3}", f"{venue}-c", json.dumps({"venue": venue, "k": k}), H0 + k)

    threads = [threading.Thread(target=write, args=(venue,)) for venue in ("BINANCE", "OKX", "DERIBIT")]
    live = LandingWriter(tmp_path, "BINANCE")
    live.frame("held", "c", "{}", H0)  # a live writer's open file: recovery must leave it alone
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recover(tmp_path) == []
    for venue in ("BINANCE", "OKX", "DERIBIT"):
        for channel in range(3):
            (path,) = closed_files(tmp_path, venue, f"ch{channel}")
            ks = [json.loads(r["d"])["k"] for r in read_file(path)]
            assert ks == list(range(channel, 600, 3)) and {
                json.loads(r["d"])["venue"] for r in read_file(path)
            } == {venue}
    live.close()
    assert len(closed_files(tmp_path, "BINANCE", "held")) == 1


def test_a_link_in_the_landing_is_never_listed_nor_read(tmp_path):
    """Links named like closed files, a `.part` or a channel directory, pointing outside: the
    listing and the recovery pass them over, and opening one is refused; nothing of them is read."""
    root, outside = tmp_path / "landing", tmp_path / "outside-SECRET"
    with LandingWriter(root, "BINANCE") as writer:
        writer.frame("btcusdt@trade", "c1", "{}", H0)
    (closed,) = closed_files(root, "BINANCE", "btcusdt@trade")
    outside.mkdir()
    (outside / "secret").write_text("SECRET\n")
    later = closed.with_name(f"{hour_key(H0)}.9{SUFFIX}")
    later.symlink_to(outside / "secret")
    closed.with_name(f"{hour_key(H0)}.10{SUFFIX}{PART}").symlink_to(outside / "secret")
    (root / "BINANCE" / "ethusdt@trade").symlink_to(closed.parent)
    assert closed_files(root, "BINANCE", "btcusdt@trade") == [closed]
    assert closed_files(root, "BINANCE", "ethusdt@trade") == []
    assert recover(root) == []
    with pytest.raises(LinkRefused) as refused:
        read_file(later)
    assert "SECRET" not in str(refused.value) and (outside / "secret").read_text() == "SECRET\n"


def test_an_hours_turn_closes_its_files_in_the_next_tick_not_while_frames_land(tmp_path, monkeypatch):
    """A batch that takes 300 channels into the next hour flushes their old files and closes none (no
    fsync holds the batch: a universe's channels all turn in the same second); the next tick closes all
    300, each readable with its summary, while the new hour's files stay open."""
    writer = LandingWriter(tmp_path, "BINANCE")
    channels = [f"c{k}usdt@trade" for k in range(300)]
    writer.frames([(c, "c1", '{"k":0}', H0 + 5) for c in channels])
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    writer.frames([(c, "c1", '{"k":1}', H0 + HOUR_NS + 5) for c in channels])
    assert synced == [] and not list(tmp_path.rglob(f"*{SUFFIX}"))
    monkeypatch.undo()
    closed = writer.tick(H0 + HOUR_NS + 10)
    assert sorted(p.parent.name for p in closed) == sorted(channels)
    assert all(read_file(p) == [{"t": H0 + 5, "c": "c1", "d": '{"k":0}'}] for p in closed)
    assert all(summary(p)["frames"] == 1 for p in closed)
    assert len(list(tmp_path.rglob(f"*{PART}"))) == 300  # the new hour's, open
    writer.close()
    assert not list(tmp_path.rglob(f"*{PART}"))


def test_the_next_hours_files_are_made_ahead_and_the_turn_opens_none(tmp_path, monkeypatch):
    """A tick in an hour's last 30 s makes the next hour's file of each open channel (`.part.ready`, locked,
    empty, not a `.part` recovery would close); the turn renames them, opening no file; one that no
    record came to is removed when its hour ends, the rest at a stop; a crash's are removed by `recover`."""
    writer = LandingWriter(tmp_path, "BINANCE")
    channels = [f"c{k}usdt@trade" for k in range(50)]
    writer.frames([(c, "c1", '{"k":0}', H0 + 5) for c in channels])
    assert writer.tick(H0 + HOUR_NS - 31 * 10**9) == [] and not list(tmp_path.rglob(f"*{READY}"))
    writer.tick(H0 + HOUR_NS - 20 * 10**9)
    ready = sorted(p.parent.name for p in tmp_path.rglob(f"*{READY}"))
    assert ready == sorted(channels) and recover(tmp_path / "BINANCE") == []  # locked: a live writer's
    monkeypatch.setattr(writer_module, "open", lambda path, *a: pytest.fail(f"opened {path}"), raising=False)
    writer.frames([(c, "c1", '{"k":1}', H0 + HOUR_NS + 7) for c in channels[:49]])  # the last one is idle
    monkeypatch.undo()
    assert len(list(tmp_path.rglob(f"*{READY}"))) == 1
    closed = writer.tick(H0 + HOUR_NS + 10)
    assert len(closed) == 50 and len(list(tmp_path.rglob(f"*{READY}"))) == 1  # its hour has not ended
    writer.tick(H0 + 2 * HOUR_NS + 10)  # it has: removed, and the 49 new files closed with their record
    assert not list(tmp_path.rglob(f"*{READY}")) and not list(tmp_path.rglob(f"*{PART}"))
    turned = closed_files(tmp_path, "BINANCE", channels[0])
    assert [p.name for p in turned] == [
        f"{hour_key(H0)}.{H0 + 5}{SUFFIX}",
        f"{hour_key(H0 + HOUR_NS)}.{H0 + HOUR_NS}{SUFFIX}",
    ]
    assert read_file(turned[1]) == [{"t": H0 + HOUR_NS + 7, "c": "c1", "d": '{"k":1}'}]

    crashed = tmp_path / "crashed"
    made = crashed / "BINANCE" / "x@trade" / f"{hour_key(H0)}.{H0}{SUFFIX}{PART}{READY}"
    made.parent.mkdir(parents=True)
    made.touch()
    assert recover(crashed / "BINANCE") == [] and not made.exists()


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "no-syncfs"])
def test_many_files_closed_at_once_are_made_durable_together_then_renamed(tmp_path, monkeypatch, syncfs):
    """From SYNC_TOGETHER files on, a close makes their data and summaries durable with one syncfs before
    any rename and one after the renames, with no fsync of its own; where there is no syncfs each file
    is fsynced before the renames and each directory after. Either way every file is closed with its
    summary and its lock released."""
    writer = LandingWriter(tmp_path, "BINANCE")
    channels = [f"c{k}usdt@trade" for k in range(writer_module.SYNC_TOGETHER)]
    writer.frames([(c, "c1", f'{{"k":"{c}"}}', H0 + 5) for c in channels])
    calls = []
    real_sync, real_fsync = writer_module.sync_filesystem, os.fsync

    def sync(root):
        calls.append(("syncfs", len(list(tmp_path.rglob(f"*{PART}"))), len(list(tmp_path.rglob("*.json")))))
        return real_sync(root) if syncfs else False

    monkeypatch.setattr(writer_module, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    closed = writer.tick(H0 + HOUR_NS + 1)
    monkeypatch.undo()
    n = len(channels)
    if (
        syncfs
    ):  # the summaries written (as temporary files) before the first, every rename done before the second
        assert calls == [("syncfs", n, 0), ("syncfs", 0, n)]
    else:
        assert calls == [("syncfs", n, 0), *["fsync"] * n, ("syncfs", 0, n), *["fsync"] * n]
    assert sorted(p.parent.name for p in closed) == sorted(channels)
    assert all(read_file(p) == [{"t": H0 + 5, "c": "c1", "d": f'{{"k":"{p.parent.name}"}}'}] for p in closed)
    assert all(summary(p)["frames"] == 1 for p in closed) and not list(tmp_path.rglob("*.tmp"))
    assert recover(tmp_path / "BINANCE") == []  # nothing left open or locked


def test_sync_filesystem_makes_a_file_system_durable_and_names_a_path_it_cannot_open(tmp_path):
    from marketdata_assets.core.files import sync_filesystem

    assert sync_filesystem(tmp_path) is (sys.platform == "linux")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sync_filesystem(tmp_path / "nowhere")


def test_many_crashed_files_are_recovered_together_with_one_syncfs_each_way(tmp_path, monkeypatch):
    """A crash at a universe leaves thousands of `.part`s: from SYNC_TOGETHER on, `recover` salvages them
    all, makes them durable with one syncfs, renames them into place and removes the `.part`s, then one
    more syncfs (a first one asks whether there is any), with no fsync of its own. Each is the closed file
    one at a time would give: its lines, a crash marker, its summary."""
    writer = LandingWriter(tmp_path, "BINANCE")
    channels = [f"c{k}usdt@trade" for k in range(writer_module.SYNC_TOGETHER + 3)]
    writer.frames([(c, "c1", f'{{"k":"{c}"}}', H0 + 5) for c in channels])
    writer.flush()
    for f in writer.files.values():  # killed: its files left open, their locks gone with it
        f.handle.close()
    calls, real_sync = [], writer_module.sync_filesystem

    def sync(root):  # (.part files, salvaged files, their summaries written, summaries in place)
        counts = (f"*{PART}", "*.recovering", "*.json.tmp", "*.json")
        calls.append(tuple(len(list(tmp_path.rglob(pattern))) for pattern in counts))
        return real_sync(root)

    monkeypatch.setattr(writer_module, "sync_filesystem", sync)
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    recovered = recover(tmp_path / "BINANCE")
    monkeypatch.undo()
    n = len(channels)
    assert calls == [(n, 0, 0, 0), (n, n, n, 0), (0, 0, 0, n)]
    assert sorted(r.path.parent.name for r in recovered) == sorted(channels)
    for r in recovered:
        records = read_file(r.path)
        assert records[0] == {"t": H0 + 5, "c": "c1", "d": f'{{"k":"{r.path.parent.name}"}}'}
        assert records[1]["m"] == "crash" and (r.lines, r.torn_dropped) == (1, 0)
        assert summary(r.path)["frames"] == 1 and summary(r.path)["recovered"] is True
    assert not list(tmp_path.rglob(f"*{PART}")) and not list(tmp_path.rglob("*.recovering"))


def test_a_backlog_crossing_the_hour_lands_in_its_hours_file_instead_of_one_more_a_tick(tmp_path):
    """A collector behind at the hour's turn: while frames of the hour still wait to land (`unlanded_ns`),
    a tick past the hour closes nothing, and they land in their hour's one file; once every frame of the
    hour landed, it closes. Without `unlanded_ns` the clock alone turns the hour, and each tick's backlog
    of that hour opens another file a channel (a universe's thousands, every second)."""
    channels = [f"c{k}usdt@trade" for k in range(3)]
    for behind in (True, False):
        root = tmp_path / str(behind)
        writer = LandingWriter(root, "BINANCE")
        writer.frames([(c, "c1", '{"k":0}', H0 + 5) for c in channels])
        for k, late in enumerate((300, 200, 100)):  # the clock past the hour, the backlog still in it
            turned = writer.tick(H0 + HOUR_NS + k, unlanded_ns=H0 + HOUR_NS - late if behind else None)
            assert (turned == []) is behind
            writer.frames([(c, "c1", f'{{"k":{k + 1}}}', H0 + HOUR_NS - late) for c in channels])
        closed = writer.tick(H0 + HOUR_NS + 10, unlanded_ns=H0 + HOUR_NS + 5 if behind else None)
        files = {c: closed_files(root, "BINANCE", c) for c in channels}
        assert all(len(paths) == (1 if behind else 4) for paths in files.values())
        assert all(sum(len(read_file(p)) for p in paths) == 4 for paths in files.values())
        assert {p.parent.name for p in closed} == set(channels) and not list(root.rglob(f"*{PART}"))
