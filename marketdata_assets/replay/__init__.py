"""Local replay servers that answer in vendors' real formats (quirks and faults included).

Tests run them in-process (a context manager gives the base URL); `make run` runs them as CLIs,
e.g. `python -m marketdata_assets.replay.alpha_api --port 8765`.
"""

import signal
from http.server import HTTPServer


def serve_until_terminated(httpd: HTTPServer) -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM (the CLIs' main loop)."""
    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0
