"""A loopback HTTP proxy in front of moto that injects storage faults, then forwards.

Faults: `fail_next` answers 503 to the next N requests (an outage S3 reports); `freeze()` holds
every request unanswered until `thaw()`, which drops them (a hung endpoint); `kill()` stops
listening (connection refused) until `revive()` listens again on the same port.
Used to show that an S3 outage is retried and never loses an accepted image.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

S3_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.fail_next = 0  # how many upcoming requests get a 503
        self.failed = 0
        self.forwarded = 0
        self.held = 0  # requests waiting in a freeze now
        self.dropped = 0  # requests held by a freeze, then cut off without an answer
        self._lock = threading.Lock()
        self._thawed = threading.Event()
        self._thawed.set()
        self._server: ThreadingHTTPServer | None = None
        self.alive = False  # False after kill(): open keep-alive connections are cut too
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take_failure(self) -> bool:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failed += 1
                return True
            self.forwarded += 1
            return False

    def freeze(self) -> None:
        """Accept connections but answer nothing until thaw()."""
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def hold_if_frozen(self) -> bool:
        """True when this request was held by a freeze: it is then dropped, never answered."""
        if self._thawed.is_set():
            return False
        with self._lock:
            self.held += 1
        self._thawed.wait()
        with self._lock:
            self.held -= 1
            self.dropped += 1
        return True

    def listen(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.alive = True

    def kill(self) -> None:
        """Stop listening: clients get connection refused."""
        self.alive = False
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def revive(self, timeout: float = 10.0) -> None:
        """Listen again on the same port (retried while the old socket lingers)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.listen()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _handler(state: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if state.hold_if_frozen() or not state.alive:
                self.close_connection = True
                return
            if state.take_failure():
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(S3_UNAVAILABLE)))
                self.end_headers()
                self.wfile.write(S3_UNAVAILABLE)
                return
            upstream = http.client.HTTPConnection(state.upstream_host, state.upstream_port, timeout=30)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in {"connection", "transfer-encoding"}
            }
            upstream.request(self.command, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status, reply.reason)
            for key, value in reply.getheaders():
                if key.lower() not in {"connection", "transfer-encoding", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815 - http.server's names

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[tuple[str, FaultProxy]]:
    state = FaultProxy(upstream)
    state.listen()
    try:
        yield state.url, state
    finally:
        state.thaw()
        state.kill()
