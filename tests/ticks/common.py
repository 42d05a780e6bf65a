"""What the provider tests share: the replay day and its UTC window, fast retries, a coroutine runner."""

import asyncio
from datetime import date, datetime, timedelta, timezone

from marketdata_assets.lib.http import RetryPolicy

UTC = timezone.utc
DAY = date(2025, 1, 15)
START = datetime(2025, 1, 15, tzinfo=UTC)
END = START + timedelta(days=1)
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


def run(coro):
    return asyncio.run(coro)
