"""A multi-partition run's metadata: each partition its own figures, the run's beside them named `run_<name>`.
`run_partitions` on a partition's own tells the console (apps/launch.py) to sum its figures over the
partitions; a `run_` figure it counts once."""

from collections.abc import Iterable, Mapping
from typing import Any


def as_run(metadata: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """`metadata` with the run's figures named `run_<name>`: those in `names`, every one without."""
    chosen = None if names is None else set(names)
    return {
        (f"run_{name}" if chosen is None or name in chosen else name): value
        for name, value in metadata.items()
    }


def add_own(context, key, figures: Mapping[str, Any], partitions: int) -> None:
    """Partition `key`'s own figures on its materialization, with the run's `run_partitions`."""
    context.add_asset_metadata({**figures, "run_partitions": partitions}, partition_key=key)
