"""`python tests/support/launch_assets.py ASSET...`: what `make run` does for one step, for tests that need a
launcher run of one pool (e.g. clickhouse's tick_store) without the whole graph: the storage checked,
dead runs swept, the assets launched in this process through marketdata_assets.apps.launch."""

from __future__ import annotations

import sys

import dagster as dg


def main(names: list[str]) -> int:
    from marketdata_assets.core import settings

    settings.apply_defaults()
    from marketdata_assets.apps.launch import Interrupted, launch, storage_watch
    from marketdata_assets.apps.main import STORAGE_DOWN, storage_answers, sweep_and_say
    from marketdata_assets.definitions import defs as load_defs

    defs = load_defs()
    keys = {dg.AssetKey(name) for name in names}
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and keys & set(a.keys)]
    if not storage_answers():
        return STORAGE_DOWN
    with storage_watch(), dg.DagsterInstance.get() as instance:
        sweep_and_say(instance)
        try:
            outcome = launch(
                " ".join(names),
                assets,
                instance=instance,
                resources=defs.resources or {},
                tags={"marketdata/launched_by": "tests/support/launch_assets.py"},
            )
        except Interrupted as interrupted:
            print(interrupted, file=sys.stderr, flush=True)
            return 130
    print(outcome.line(), flush=True)
    for line in outcome.error_lines():
        print(line, file=sys.stderr, flush=True)
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
