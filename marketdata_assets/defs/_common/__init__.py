"""What the Dagster domains share (and nothing else imports across domains): the ingest assets' run
options and report-to-metadata step, the day x instrument partition keys, run tags of ranges, and
the checks' adapter (quality/checks.py's declarations as asset checks). Domains import `_common`;
`_common` imports no domain (.importlinter)."""
