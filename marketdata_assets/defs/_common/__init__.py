"""What the Dagster domains share (and nothing else imports across domains): the ingest assets' run
options and report-to-metadata step, the day x instrument partition keys, run tags of ranges, the
run-config base (config.RunConfig), the daily-use markers of schedules and sensors, and
the checks' adapter (quality/checks.py's declarations as asset checks). Domains import `_common`;
`_common` imports no domain (.importlinter)."""
