"""A local HTTP server that answers from a script of responses, for testing the client policy.

Vendor replay servers (real formats) build on the same idea; this one only serves what a test
queues: status, headers, body, delay, and what to do (in the handler thread) before answering and
after the answer is written: wait for other requests, note when the answer left.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_s: float = 0.0
    before: Callable[[], None] | None = None  # run before the delay and the answer
    after: Callable[[], None] | None = None  # run once the answer is written


class ScriptedServer:
    def __init__(self):
        self.replies: deque[Reply] = deque()
        self.requests: list[tuple[float, str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                outer.requests.append((time.monotonic(), self.command, self.path))
                reply = (
                    outer.replies.popleft() if outer.replies else Reply(404, b'{"detail":"no reply queued"}')
                )
                if reply.before is not None:
                    reply.before()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.after is not None:
                    reply.after()

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
