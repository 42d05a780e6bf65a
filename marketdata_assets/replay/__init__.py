"""Local replay servers that answer in vendors' real formats (quirks and faults included).

Tests run them in-process (a context manager gives the base URL); `make run` runs them as CLIs,
e.g. `python -m marketdata_assets.replay.alpha_api --port 8765`.
"""

import signal
import threading
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


class BackgroundServer:
    """The lifecycle the replay servers share: `with Server(...) as s: s.base_url` serves from a
    daemon thread (short poll interval, so `stop()` returns quickly). Subclasses set `httpd`."""

    httpd: HTTPServer
    thread_name = "replay"

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=self.thread_name, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
