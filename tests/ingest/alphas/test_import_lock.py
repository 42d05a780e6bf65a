"""The alpha import's partition lock on its own: refusal naming the partition and the holder, what a
holder that ended, failed or could not take every partition leaves for the next one."""

from __future__ import annotations

import os

import pytest

from marketdata_assets.ingest.alphas.import_lock import PartitionBusy, partition_lock

STORE = "regular_alphas.alphas"


def test_a_held_partition_refuses_and_the_others_it_took_are_left_as_they_were(tmp_path):
    with partition_lock(tmp_path, STORE, "REGULAR", ["2025-08"], holder="Dagster run abc"):
        with (
            pytest.raises(PartitionBusy) as error,
            partition_lock(tmp_path, STORE, "REGULAR", ["2025-07", "2025-08"], holder="another run"),
        ):
            pass
        message = str(error.value)
        assert (
            f"alpha import of REGULAR 2025-08 of {STORE} is already running: Dagster run abc (pid "
            f"{os.getpid()}"
        ) in message and "wait for it to end" in message
        # 2025-07, taken before 2025-08 refused, is free again and says nothing died
        with partition_lock(tmp_path, STORE, "REGULAR", ["2025-07"]) as died:
            assert died == []
        with partition_lock(tmp_path, STORE, "SUPER", ["2025-08"]) as died:  # another type: another partition
            assert died == []


def test_a_holder_that_failed_is_reported_to_the_next_and_a_clean_end_is_not(tmp_path):
    with pytest.raises(RuntimeError), partition_lock(tmp_path, STORE, "REGULAR", ["2025-07"], holder="run 1"):
        raise RuntimeError("the import failed")
    with partition_lock(tmp_path, STORE, "REGULAR", ["2025-07"], holder="run 2") as died:
        assert len(died) == 1 and died[0].startswith(f"REGULAR 2025-07 of {STORE}: run 1 (pid {os.getpid()}")
        assert died[0].endswith("did not end (failed)")
    with partition_lock(tmp_path, STORE, "REGULAR", ["2025-07"], holder="run 3") as died:
        assert died == []
