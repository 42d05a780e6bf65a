"""Local replay servers that answer in vendors' real formats (quirks and faults included).

Tests run them in-process (a context manager gives the base URL); `make run` runs them as CLIs,
e.g. `python -m marketdata_assets.replay.alpha_api --port 8765`.

What they share lives here: the lifecycle (`BackgroundServer`) and the HTTP plumbing. A server
answers a request with a `Reply` from one `dispatch(method, target, headers, body)` callable;
`make_handler` does the rest once for all of them (read the body, turn a replay bug into a 500,
the delays, the damaged answers of faults, the headers, a client that hung up, verbose logging).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    """One answer, and how to send it."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering (a latency fault)
    truncate: bool = False  # send the first half of the body, Content-Length matching the cut
    disconnect: bool = False  # announce the whole body, send half of it, drop the connection


Dispatch = Callable[[str, str, Message, bytes], Reply]


def json_reply(
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
    ensure_ascii: bool = True,
) -> Reply:
    """A compact JSON answer; `headers` come after Content-Type."""
    body = json.dumps(payload, ensure_ascii=ensure_ascii, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, {"Content-Type": content_type, **(headers or {})})


def answer(dispatch: Dispatch, method: str, target: str, headers: Message, body: bytes) -> Reply:
    """`dispatch`'s reply, or a 500 naming the exception: a replay bug must not hang the client."""
    try:
        return dispatch(method, target, headers, body)
    except Exception as error:  # noqa: BLE001
        return json_reply(500, {"detail": f"replay server error: {type(error).__name__}: {error}"})


def make_handler(
    server: BackgroundServer,
    dispatch: Dispatch,
    *,
    name: str,
    methods: Iterable[str] = ("GET", "POST", "DELETE", "HEAD"),
    log_query: bool = True,
    delay_before: Callable[[str], float] | None = None,
) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a replay server.

    methods: the HTTP methods answered (others get the standard library's 501).
    log_query: with `server.verbose`, print the query string too (False where it may carry secrets;
    bodies are never printed). delay_before(target): seconds to wait before dispatching (a latency
    fault that must come before the server looks at the request; `Reply.delay_s` waits after).
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes
        server_version = name
        sys_version = ""

        def serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if delay_before is not None and (seconds := delay_before(self.path)):
                time.sleep(seconds)
            reply = answer(dispatch, self.command, self.path, self.headers, body)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if server.verbose:
                target = self.path if log_query else urlsplit(self.path).path
                print(f"{self.command} {target} -> {reply.status}", file=sys.stderr, flush=True)
            try:
                self.send(reply)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a latency fault)
                self.close_connection = True

        def send(self, reply: Reply) -> None:
            payload = reply.body[: max(1, len(reply.body) // 2)] if reply.truncate else reply.body
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if reply.disconnect:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    for method in methods:
        setattr(Handler, f"do_{method}", Handler.serve)
    return Handler


class ReplayHTTPServer(ThreadingHTTPServer):
    """A thread per connection; a client that hung up is not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def cli_parser(module: str, description: str, *, port: int, config: str) -> argparse.ArgumentParser:
    """A replay CLI's parser with what they all take: --host, --port, --config (`config` says what
    the JSON file holds), --seed; `config_from_cli` reads them back."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port, help="0 picks a free port (printed)")
    p.add_argument("--config", help=f"JSON file with {config}; flags override")
    p.add_argument("--seed", type=int)
    return p


def config_from_cli(
    args: argparse.Namespace, from_dict: Callable[[dict], Any], flags: Iterable[str] | Mapping[str, str]
) -> Any:
    """The config a CLI asked for: the --config file's fields, then each of `flags` given on the
    command line (an argparse dest → the config field of that name, or the one it maps to)."""
    data: dict = {}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            data = json.load(handle)
    config = from_dict(data)
    for flag, attr in flags.items() if isinstance(flags, Mapping) else ((f, f) for f in flags):
        if getattr(args, flag) is not None:
            setattr(config, attr, getattr(args, flag))
    return config


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


def run_cli(
    argv: Iterable[str] | None,
    parser: argparse.ArgumentParser,
    start: Callable[[argparse.Namespace], Any],
    *,
    fault: str | None = None,
    verbose: str | None = "print each request line to stderr",
) -> int:
    """A replay CLI's `main`: --fault and --verbose added last to `parser` (`fault`, `verbose` their
    help; None: no such flag), `argv` parsed (None: the command line), then the server `start(args)`
    makes gets each --fault (JSON: the server's `add_fault` arguments), prints its `banner()` (the
    first line of output, naming its `base_url`) and serves until Ctrl-C or SIGTERM; --verbose prints
    each request line to stderr."""
    if fault is not None:
        parser.add_argument("--fault", action="append", default=[], help=fault)
    if verbose is not None:
        parser.add_argument("--verbose", action="store_true", help=verbose)
    args = parser.parse_args(list(argv) if argv is not None else None)
    specs = [json.loads(text) for text in args.fault] if fault is not None else []
    server = start(args)
    for spec in specs:
        server.add_fault(**spec)
    server.verbose = verbose is not None and args.verbose
    print(server.banner(), flush=True)
    return serve_until_terminated(server.httpd)


class Limited:
    """A fault that fires at most `times` times (None: no limit), counting them in `fired`."""

    times: int | None
    fired: int

    def take(self) -> bool:
        """Count one firing; False once the `times` are used up."""
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


class FaultList:
    """The faults a replay fires: `config.faults`, changed under the server's `lock`."""

    def keep_fault(self, fault):
        with self.lock:
            self.config.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.config.faults.clear()


class BackgroundServer:
    """The lifecycle the replay servers share: `with Server(...) as s: s.base_url` serves from a
    daemon thread (short poll interval, so `stop()` returns quickly). Subclasses call `listen`."""

    httpd: HTTPServer
    thread: threading.Thread | None = None
    thread_name = "replay"
    verbose = False  # print each request line to stderr

    def listen(self, host: str, port: int, dispatch: Dispatch, **options) -> None:
        """Bind `host:port` (0: a free port) to a handler answering with `dispatch` (options:
        `make_handler`)."""
        self.httpd = ReplayHTTPServer((host, port), make_handler(self, dispatch, **options))

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
