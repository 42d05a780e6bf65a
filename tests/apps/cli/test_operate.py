"""`marketdata backfill archives`: the Binance days data.binance.vision publishes, as runs of one UTC day x
every archive venue over every archive asset (its runs:
tests/sources/binance_vision/test_binance_archives.py). No process: the command's plan."""

from __future__ import annotations

from datetime import date, timedelta

from marketdata_assets.apps.cli import operate


def test_an_archive_backfill_is_a_run_a_day_over_every_archive_venue_and_asset():
    from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS, VENUES, binance_archives

    days = [str(date(2025, 1, 1) + timedelta(days=i)) for i in range(3)]
    runs = operate.backfill_runs("archives", days, operate.BACKFILL["archives"].days_per_run)
    assert [label for label, _, _ in runs] == [f"archives {day} x {len(VENUES)} venues" for day in days]
    assert {partitions for _, _, partitions in runs} == {len(VENUES)}
    assert runs[0][1] == {
        "dagster/asset_partition_range_start": f"2025-01-01|{VENUES[0]}",
        "dagster/asset_partition_range_end": f"2025-01-01|{VENUES[-1]}",
    }
    assert (
        set(operate.domain_assets("archives"))
        == set(ARCHIVE_ASSETS.values())
        == {key.to_user_string() for key in binance_archives.keys}
    )
    assert operate.backfill_config("archives") == {
        "ops": {"binance_archives": {"config": {"retry_failed": True, "replace": False}}}
    }
    days_def = operate._partitions("archives")[0]
    assert operate.days_between(days_def, date(2025, 1, 1), date(2025, 1, 3)) == days
    assert "archives" in operate.backfill.params[0].type.choices


def test_a_runs_bar_counts_the_work_reported_in_its_unit_and_starts_again_for_another():
    """The bar of a CLI run or an export (`work_bar`): partitions materialized until work reports; then the
    sum of the pieces reported in the last unit (two feeds' slices add up), each unit counted from 0."""
    import io

    import click

    from marketdata_assets.apps.cli.session import _bar_listeners
    from marketdata_assets.core import progress

    with click.progressbar(length=4, label="backfill", file=io.StringIO()) as bar:
        on_event, on_progress = _bar_listeners(bar, "backfill", 4)
        on_event("materialization", type("Event", (), {"asset_key": "a", "partition": "p1"})())
        assert (bar.label, bar.pos, bar.length) == ("backfill (partitions)", 1, 4)
        with progress.listening(on_progress):
            progress.report("feed 1", 2, 10)
            progress.report("feed 2", 3, 5)
            assert (bar.label, bar.pos, bar.length) == ("backfill (slices)", 5, 15)
            progress.report("import", 1, 3, "files")
            assert (bar.label, bar.pos, bar.length) == ("backfill (files)", 1, 3)
            progress.report("import", 3, 3, "files")
            on_event("materialization", type("Event", (), {"asset_key": "a", "partition": "p2"})())
            assert (bar.label, bar.pos, bar.length) == ("backfill (files)", 3, 3)  # work reported: it rules
        progress.report("feed 1", 9, 10)  # after the block: nobody listens
        assert bar.pos == 3
