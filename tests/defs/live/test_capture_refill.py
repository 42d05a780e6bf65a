"""The pieces of the live path's start (no server; the whole of it, a first hour's check and its sensor
run's refill against ClickHouse and the crypto replay: tests/defs/live/test_live_loads.py): the sensor's
choice of an instrument's first captured hour, the refill's command, and the capture start read from
landing files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from marketdata_assets.stores.landing import LandingWriter


def test_the_sensor_adds_the_refill_to_an_instruments_first_captured_hour_of_the_day():
    from marketdata_assets.defs.live.sensors import first_captured, hour_runs

    landed = {("2026-11-27T13Z", "OKX:BTC-USDT"), ("2026-11-27T14Z", "OKX:BTC-USDT")}
    landed |= {("2026-11-26T23Z", "DERIBIT:BTC-PERPETUAL"), ("2026-11-27T13Z", "DERIBIT:BTC-PERPETUAL")}
    closed = {
        "2026-11-27T13Z": {"OKX:BTC-USDT": ["a"], "DERIBIT:BTC-PERPETUAL": ["b"]},
        "2026-11-27T14Z": {"OKX:BTC-USDT": ["c"]},
    }
    starting = first_captured(landed, closed)
    assert starting == {"2026-11-27T13Z": ["OKX:BTC-USDT"]}  # Deribit's capture ran over midnight
    first, later = hour_runs(closed, "live_trades", starting)
    assert [k.path[0] for k in first.asset_selection] == ["live_trades", "live_trade_id_refill"]
    assert first.run_config["ops"]["live_trade_id_refill"]["config"] == {
        "instruments": ["OKX:BTC-USDT"],
        "before_capture": True,
    }
    assert [k.path[0] for k in later.asset_selection] == ["live_trades"]


def test_the_refill_command_is_dg_launch_with_valid_config():
    from marketdata_assets.defs.live.continuity import LiveRefillConfig, refill_command

    command = refill_command("2026-11-27-14:00", ["OKX:BTC-USDT", "DERIBIT:BTC-PERPETUAL"])
    assert command.startswith("dg launch --assets live_trade_id_refill --partition 2026-11-27-14:00 ")
    config = json.loads(command.split("--config-json ")[1].strip("'"))  # what the shell hands dg
    (op,) = config["ops"]
    assert op == "live_trade_id_refill"
    assert LiveRefillConfig(**config["ops"][op]["config"]).instruments == [
        "DERIBIT:BTC-PERPETUAL",
        "OKX:BTC-USDT",
    ]


def test_the_capture_start_is_the_first_landed_record_and_trade_id_of_the_day(tmp_path):
    from marketdata_assets.ingest.live.hourly.load import capture_start

    began = datetime(2026, 11, 27, 13, 15, 2, tzinfo=UTC)

    def frame(seq: int, ms: int) -> str:
        data = {"trade_seq": seq, "trade_id": str(seq), "timestamp": ms, "tick_direction": 0, "price": 100.0}
        data |= {"amount": 10.0, "direction": "buy", "instrument_name": "BTC-PERPETUAL"}
        params = {"channel": "trades.BTC-PERPETUAL.100ms", "data": [data]}
        return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params})

    ns, channel = int(began.timestamp() * 1e9), "trades.BTC-PERPETUAL.100ms"
    with LandingWriter(tmp_path, "DERIBIT") as writer:
        writer.marker(channel, "c1", "connect", ns)
        writer.frame(channel, "c1", '{"jsonrpc":"2.0","id":1,"result":["x"]}', ns + 1)  # an ack
        for seq in (501, 502):
            writer.frame(channel, "c1", frame(seq, ns // 1_000_000 + seq), ns + seq * 1_000_000)
    assert capture_start(tmp_path, "DERIBIT", "BTC-PERPETUAL", date(2026, 11, 27)) == (501, began)
    assert capture_start(tmp_path, "DERIBIT", "BTC-PERPETUAL", date(2026, 11, 26)) is None  # no file
