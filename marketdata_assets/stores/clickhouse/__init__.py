"""ClickHouse: the datasets' tables, the active-load pointer and ingest log, the idempotent writer and the
read views."""

import os

# The embedded engine's allocator (chDB's jemalloc, configured when chDB loads) returns the pages a query
# freed after 0.5 s instead of keeping them ~10 s: a streamed archive load's inserts, ~0.5 s apart, then
# reuse them rather than add ~100 MB of peak memory (bench archive_day). A user's own setting wins.
os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:500")
