"""Dagster-free basics every layer shares: settings, the one vendor HTTP client, naming (venues, instruments,
A-share codes), calendars, files, charts, metrics. Imports nothing else of the package."""
