"""The compiled lag histogram (`_lags.pyx`) against its pure-Python original (stats.add_lags): the same
buckets and the same sum, bit for bit, over lags at every bucket bound, negative ones, huge receive times
and times that are not plain ints."""

from __future__ import annotations

import importlib
import random
from types import SimpleNamespace

import pytest

from marketdata_assets.core import compiled
from marketdata_assets.ingest.live.stats import LAG_BUCKETS_S, add_lags_py


def test_the_same_buckets_and_sum():
    try:
        fast = importlib.import_module("marketdata_assets.ingest.live._lags").add_lags
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled lags are not built")
        raise
    rng, base_ms = random.Random(5), 1_764_392_397_123
    lags_ms = [round(b * 1000) + d for b in LAG_BUCKETS_S for d in (-1, 0, 1)] + [-5_000, 0, 10**6]
    records = [
        SimpleNamespace(recv_ns=(base_ms + lag) * 10**6 + rng.randrange(10**6), event_ms=base_ms)
        for lag in lags_ms
    ]
    records += [SimpleNamespace(recv_ns=2**63 - 1, event_ms=0), SimpleNamespace(recv_ns=True, event_ms=1.5)]
    records += [
        SimpleNamespace(recv_ns=rng.randrange(10**18, 2 * 10**18), event_ms=rng.randrange(10**12))
        for _ in range(500)
    ]
    fast_buckets, slow_buckets = [0] * (len(LAG_BUCKETS_S) + 1), [0] * (len(LAG_BUCKETS_S) + 1)
    assert fast(records, fast_buckets) == add_lags_py(records, slow_buckets)
    assert fast_buckets == slow_buckets and sum(fast_buckets) == len(records)
    assert all(fast_buckets[:-1])  # every bucket bound crossed
