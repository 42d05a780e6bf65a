"""The code location: every asset, check, schedule and sensor under defs/, plus the resources.

Runs execute their steps in processes forked from a server that has already imported the project
(forkserver, preloading step_preload: the code location, every defs/ module, the instance's storage): a
step does not import Dagster, Polars, chDB and the project again, which made a run mostly start-up time.
A step waiting for a pool slot waits quietly and can be stopped (pool_wait); the dead_run_sweep
sensor fails runs whose process died and frees their slots (runs).
"""

from pathlib import Path

import dagster as dg

from marketdata_assets.orchestration import pool_wait
from marketdata_assets.orchestration.runs import dead_run_sweep
from marketdata_assets.resources import build_resources
from marketdata_assets.resources.sources import source_resources

pool_wait.install()  # every process that runs steps imports this module (see pool_wait)

EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["marketdata_assets.step_preload"]}}}
)


# Declarative automation (crypto_factors when its upstream partitions change, the coverage pictures on
# their crons) evaluated by one sensor, running by default: none of those assets calls a vendor.
# Dagster's own default sensor would be stopped.
AUTOMATION = dg.AutomationConditionSensorDefinition(
    "automation_conditions",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


@dg.definitions
def defs() -> dg.Definitions:
    domains = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # the stores' resources, and the vendor sources' (tushare, yahoo, binance, okx, deribit) from the
    # ticks domain's sources config file
    resources = {**build_resources(), **source_resources()}
    return dg.Definitions.merge(
        domains, dg.Definitions(resources=resources, executor=EXECUTOR, sensors=[AUTOMATION, dead_run_sweep])
    )
