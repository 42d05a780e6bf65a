"""Process entry points, imported by nothing: the marketdata command (cli), make run (demo, main, launch), the
metrics exporter, the configuration reference's generator (configuration)."""
