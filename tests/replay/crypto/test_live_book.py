"""The live replay's book and tape under its two loops: the WebSocket loop steps an instrument while the
REST replay's threads answer from it (the market's lock, then the instrument's)."""

from __future__ import annotations

import threading
import time

from marketdata_assets.replay.crypto.config import ReplayConfig
from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.tape import Market


def test_a_step_into_the_next_days_tape_while_the_rest_replay_answers_does_not_deadlock():
    market = Market(ReplayConfig(trades_per_day=500))
    live = LiveInstrument(market, "BTCUSDT", seed=3)
    live.cursor = live.tape.n - 1  # the next trades roll into the next day's tape (the market's lock)
    day, stepped = live.tape.day, []
    answered = threading.Event()

    def rest_answer():  # a REST request: the market's lock held, then the book's snapshot
        with market.lock:
            stepper.start()
            time.sleep(0.2)  # the WebSocket loop is inside its step by now
            live.snapshot(5)
        answered.set()

    stepper = threading.Thread(target=lambda: stepped.extend(live.tape_trades(3)), daemon=True)
    rest = threading.Thread(target=rest_answer, daemon=True)
    rest.start()
    rest.join(10)
    stepper.join(10)
    assert answered.is_set() and not stepper.is_alive(), "the two replay loops deadlocked"
    assert [t[0] for t in stepped] == list(range(stepped[0][0], stepped[0][0] + 3))
    assert live.tape.day > day  # it rolled on into the next day's tape
