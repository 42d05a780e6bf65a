"""The instrument master as a step: a source without its credentials, or a venue it does not know, fails
the step saying so (the sources that answered are stored all the same)."""

from __future__ import annotations

import dagster as dg

from marketdata_assets.resources.sources import TushareResource
from tests.support.ticks_dagster import UNUSED, crypto_resources, failure


def master_run(clickhouse, venues: list[str]) -> dg.ExecuteInProcessResult:
    from marketdata_assets.defs.crypto.instruments import instrument_master

    resources = {
        **crypto_resources(UNUSED),
        "tushare": TushareResource(base_url=UNUSED, token=""),
        "clickhouse": clickhouse,
    }
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            [instrument_master],
            resources=resources,
            instance=instance,
            run_config={"ops": {"instrument_master": {"config": {"venues": venues}}}},
            raise_on_error=False,
        )


def test_tushare_without_its_token_fails_the_step_saying_so(clickhouse):
    result = master_run(clickhouse, ["TUSHARE"])
    assert not result.success
    assert failure(result)[0] == (
        "instrument_master: 1 source(s) failed (versions stored: none): TUSHARE: TUSHARE_TOKEN is not set: "
        "the A-share master (SSE, SZSE, BSE) is not refreshed, so universes.a_shares.rules select from what "
        "is stored; set TUSHARE_TOKEN (docs/configuration.md)"
    )


def test_a_venue_it_does_not_know_is_refused_naming_the_known_ones(clickhouse):
    result = master_run(clickhouse, ["BINANCEX"])
    assert failure(result)[0] == (
        "instrument_master: unknown venue(s) BINANCEX; one of BINANCE, BINANCE_UM, DERIBIT, OKX, TUSHARE"
    )
