"""Local replay servers that answer in vendors' real formats (quirks and faults included).

Tests run them in-process (a context manager gives the base URL); `make run` runs them as CLIs,
e.g. `python -m marketdata_assets.replay.alpha_api --port 8765`.
"""
