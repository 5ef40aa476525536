"""The sink's HTTP listener (OTLP/HTTP, the Jaeger-compatible query API, the live view).

A request, from the socket to the store or back:

1. ``SinkHTTPServer.process_request``: a thread for the connection when one of ``max_connections`` is free;
   otherwise 503 at once, so that clients that hold connections open cannot make the sink start a thread each.
2. ``Handler.handle_one_request`` (http.server): the request line and headers, which must arrive within
   ``header_timeout`` of the connection (every read waits only for what is left of it, so a client that sends a
   byte now and then cannot stretch it); lines and header counts are bounded by http.server itself.
3. ``Handler.parse_request``: one Host header, naming a host the sink answers to (hosts.py), else 403.
4. ``do_POST``: otlphttp.py (the Collector's otlphttp.go: content type, size, body, intake, store);
   ``do_GET``: query.py (the Jaeger API and the live view).

Connections serve one request each (HTTP/1.0), so no thread waits on an idle keep-alive connection. Nothing a
client sent is repeated in an answer or a log line unless cut to a few dozen characters (``wording.cut``).
"""

from __future__ import annotations

import io
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cristack.harness.sink import otlphttp, query
from cristack.harness.sink.hosts import AllowedHosts
from cristack.harness.sink.limits import Busy, Gate
from cristack.harness.sink.store import SpanStore
from cristack.harness.sink.ui import Summaries
from cristack.wording import cut

log = logging.getLogger(__name__)

BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
        b"Connection: close\r\nContent-Length: 52\r\n\r\nthe sink serves as many connections as it can; retry")
DRAIN_BYTES = 1024 * 1024  # read and dropped after an early answer, so that the client gets to read it
DRAIN_SECONDS = 1.0


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, every read bounded by one deadline for a whole phase (the head, the body)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class SinkHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], store: SpanStore, gate: Gate, hosts: AllowedHosts) -> None:
        self.store, self.gate, self.hosts = store, gate, hosts
        self.summaries = Summaries(store, gate.limits.max_view_values)
        self._slots = threading.BoundedSemaphore(gate.limits.max_connections)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.setblocking(False)
                request.send(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve, args=(request, client_address), name="sink-http", daemon=True).start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a handler (a reset, a timeout while answering): one log line, no
        traceback on stderr."""
        log.info("sink http: connection from %s ended: %s", client_address[0], cut(repr(sys.exc_info()[1]), 200))


class Handler(BaseHTTPRequestHandler):
    server: SinkHTTPServer
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection)
        self._reader.deadline = time.monotonic() + self.server.gate.limits.header_timeout
        plain, self.rfile = self.rfile, io.BufferedReader(self._reader, 64 * 1024)
        plain.close()
        self.unread_body = False  # set when an answer goes out before the body was read
        self._answered = False

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("sink http: " + fmt, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a bad request line, an unknown method) quote what the client sent."""
        super().send_error(code, cut(message, 120) if message else message, explain)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.unread_body = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            self.respond_text(400, "more than one Host header")
            return False
        if not self.server.hosts.allows(hosts[0] if hosts else None):
            self.respond_text(403, self.server.hosts.refusal(hosts[0]))
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._guarded(otlphttp.export)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._guarded(query.answer)

    def _guarded(self, serve: Any) -> None:
        """A bug of ours fails this request with 500 and one log line, not the connection with a traceback."""
        try:
            serve(self)
        except (TimeoutError, ConnectionError):
            raise
        except Busy as err:
            if not self._answered:
                self.respond_text(503, f"the sink is busy ({err}); retry", {"Retry-After": "1"})
        except Exception as err:  # noqa: BLE001 - the last line of defence for one request
            log.warning("sink http: %s %s failed: %s", self.command, cut(self.path, 80), cut(repr(err), 200))
            if not self._answered:
                self.respond_text(500, f"internal error: {cut(repr(err), 200)}")

    # Reading the body -----------------------------------------------------------------------------------

    def body_deadline(self) -> None:
        self._reader.deadline = time.monotonic() + self.server.gate.limits.body_timeout

    # Answering --------------------------------------------------------------------------------------------

    def start_answer(self, code: int, kind: str, length: int | None = None, headers: dict[str, str] | None = None
                     ) -> None:
        self._answered = True
        self.connection.settimeout(self.server.gate.limits.write_timeout)
        self.send_response(code)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        # The Jaeger-shaped bodies stay as Jaeger writes them; what the store let go rides in headers
        # (and in full at /api/sink/stats).
        stats = self.server.store.stats()
        self.send_header("X-Cristack-Dropped-Spans", str(stats.dropped_spans))
        self.send_header("X-Cristack-Dropped-Traces", str(stats.dropped_traces))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def write(self, data: bytes) -> None:
        self.wfile.write(data)

    def respond(self, code: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.start_answer(code, kind, len(body), headers)
        self.write(body)

    def respond_text(self, code: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.respond(code, text.encode(), "text/plain; charset=utf-8", headers)

    def finish(self) -> None:
        if self.unread_body:
            self._drain()
        super().finish()

    def _drain(self) -> None:
        """After answering early (a refused type, size or Host), read a little of the body the client is still
        sending before closing, so that the close does not reset the connection under the answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self._reader.deadline = time.monotonic() + DRAIN_SECONDS
            left = DRAIN_BYTES
            while left > 0 and self.rfile.read1(min(left, 64 * 1024)):
                left -= 64 * 1024
        except OSError:
            pass
