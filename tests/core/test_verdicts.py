"""A partition's verdict from its slices (core.verdicts, ingest.engine `IngestReport.verdict`): what is
stored, what this source cannot load and where it comes from, what failed; a run's is the worst."""

from datetime import date

from marketdata_assets.core.verdicts import EXIT_CODES, FAILED, NOT_LOADABLE, OK, PARTIAL, Verdict, worst
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.engine import IngestReport, SliceOutcome

DAY = date(2026, 11, 23)
BTC, ETH = (SliceKey("trades", "BINANCE_UM", i, DAY) for i in ("BTCUSDT", "ETHUSDT"))
PAST = "past the venue's REST history, not fetched and not stored"


def where(keys) -> str:
    return f"the archives of {len(keys)} slice(s)"


def test_a_partition_is_ok_partial_not_loadable_or_failed_by_what_of_it_is_stored():
    loaded = SliceOutcome(BTC, "ok", rows=40)
    assert IngestReport().verdict(where) == Verdict(OK)  # no slice: nothing was to be stored
    assert IngestReport(
        outcomes={BTC: loaded}, held={ETH: "covered by BINANCE_ARCHIVE"}
    ).verdict() == Verdict(OK)

    partial = IngestReport(outcomes={BTC: loaded}, not_fetched={ETH: PAST}).verdict(where)
    assert partial == Verdict(PARTIAL, f"1 slice(s) {PAST}: BINANCE_UM:ETHUSDT 2026-11-23", where([ETH]))
    assert partial.stored and partial.text() == f"{partial.reason}. Loads from: the archives of 1 slice(s)"

    unloadable = IngestReport(not_fetched={BTC: PAST, ETH: PAST}).verdict(where)
    assert unloadable.status == NOT_LOADABLE and not unloadable.stored
    assert (
        unloadable.reason
        == f"2 slice(s) {PAST}: BINANCE_UM:BTCUSDT 2026-11-23, BINANCE_UM:ETHUSDT 2026-11-23"
    )

    broken = SliceOutcome(BTC, "failed", error="HTTP 500 from /fapi/v1/aggTrades")
    failed = IngestReport(outcomes={BTC: broken}, not_fetched={ETH: PAST}).verdict(where)
    assert failed.status == FAILED and not failed.stored  # a failure is not "not loadable"
    assert failed.reason.startswith("1 slice(s) failed: HTTP 500 from /fapi/v1/aggTrades, 1 slice(s) past")
    stopped = IngestReport(outcomes={BTC: loaded, ETH: SliceOutcome(ETH, "skipped")}).verdict()
    assert stopped.status == PARTIAL and stopped.reason.startswith("1 slice(s) skipped (the run's deadline")


def test_a_runs_verdict_is_its_worst_partitions_and_its_exit_code_tells_partial_from_failed():
    assert worst([]) == OK and worst([OK, PARTIAL, OK]) == PARTIAL and worst([PARTIAL, FAILED, OK]) == FAILED
    assert worst([NOT_LOADABLE, PARTIAL]) == NOT_LOADABLE
    assert [EXIT_CODES[s] for s in (OK, PARTIAL, NOT_LOADABLE, FAILED)] == [0, 4, 1, 1]


def test_held_slices_count_their_stored_rows():
    report = IngestReport(outcomes={BTC: SliceOutcome(BTC, "ok", rows=40)}, held={ETH: "stored"})
    report.held_rows[ETH] = 25
    assert report.rows_stored() == 65 and report.part([ETH]).rows_stored() == 25
    assert report.metadata("trades")["rows"] == 40  # what the run itself wrote
