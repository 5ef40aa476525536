"""What the sink's listeners allow a client: sizes, time, connections, and the memory requests and answers may
hold while they are in flight.

Upstream anchors: the Collector's HTTP server reads at most 20 MiB of body, counted again after inflating
(``config/confighttp/server.go``: ``defaultMaxRequestBodySize``), gives a client a minute for its headers and
30 s for the answer (``NewDefaultServerConfig``: ``ReadHeaderTimeout``, ``WriteTimeout``); its gRPC receiver
takes messages of up to 4 MiB (grpc-go's default, which ``configgrpc`` keeps). The Collector's goroutines are
cheap and its ``memory_limiter`` refuses work with 503 / UNAVAILABLE when memory runs high; here every
connection is a thread, so threads and the bytes in flight are capped instead, with the same answer when full.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cristack.harness.sink.intake import MAX_GRPC_MESSAGE, MAX_HTTP_BODY


@dataclass(frozen=True)
class Limits:
    max_http_body: int = MAX_HTTP_BODY  # also once inflated
    max_grpc_message: int = MAX_GRPC_MESSAGE
    max_connections: int = 64  # HTTP connections served at once, one thread each; more get 503 at once
    grpc_workers: int = 4
    # gRPC calls accepted at once (RESOURCE_EXHAUSTED past it); each holds its message, up to 4 MiB, while it waits
    # for a worker. Components export small batches, but many at the same moment (kubelet, runtime, monitor, shim
    # on each of several nodes, a starved sink catching up): a cap of 8 lost their spans on a loaded machine.
    max_concurrent_rpcs: int = 32
    in_flight_bytes: int = 2 * MAX_HTTP_BODY  # request bodies read and answers being written, all connections
    header_timeout: float = 10.0  # from accepting a connection to the end of the request's headers
    body_timeout: float = 30.0  # for the whole body
    write_timeout: float = 30.0  # for each write of an answer
    busy_wait: float = 10.0  # how long a request waits for room (bytes in flight, the work lock) before 503
    max_view_values: int = 100_000  # attribute values, events and items decoded for one trace's page or summary

    @property
    def largest_request(self) -> int:
        """The largest request the sink accepts, in bytes (an OTLP/HTTP body, inflated or not)."""
        return max(self.max_http_body, self.max_grpc_message)


class Busy(Exception):
    """No room for this request within ``busy_wait``: 503 / UNAVAILABLE, which OTLP clients retry."""


class Budget:
    """Bytes that requests and answers in flight may hold at once, over all connections."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._room = threading.Condition()

    def take(self, size: int, timeout: float) -> int:
        """Takes ``size`` bytes (at most the whole budget) once they are free; Busy when they do not come free
        within ``timeout``. Returns what it took, for ``give``."""
        size = max(0, min(size, self.total))
        with self._room:
            if not self._room.wait_for(lambda: self.used + size <= self.total, timeout):
                raise Busy(f"{self.used:,} of {self.total:,} bytes are held by requests in flight")
            self.used += size
        return size

    def give(self, size: int) -> None:
        with self._room:
            self.used -= size
            self._room.notify_all()

    @contextmanager
    def hold(self, size: int, timeout: float) -> Iterator[int]:
        """Holds ``size`` bytes for the block."""
        taken = self.take(size, timeout)
        try:
            yield taken
        finally:
            self.give(taken)

    @contextmanager
    def holding(self, timeout: float) -> Iterator[Hold]:
        """A hold that grows as a request's body arrives, all given back at the end of the block."""
        hold = Hold(self, timeout)
        try:
            yield hold
        finally:
            self.give(hold.size)


class Hold:
    """Bytes of a Budget held by one request, taken as its body arrives: a client that sends slowly holds what
    it has sent, not what it says it will send."""

    def __init__(self, budget: Budget, timeout: float) -> None:
        self.budget, self.timeout, self.size = budget, timeout, 0

    def grow(self, size: int) -> None:
        self.size += self.budget.take(size, self.timeout)


class Gate:
    """The sink's shared limits: the byte budget, and one lock for the work whose transient memory is many
    times its input (a request inflated, decoded and stored; a slice of an answer or a trace's page rendered):
    CPU work that gains nothing from running beside itself under the GIL, and whose transient memory is then
    one piece's, whatever the number of clients."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = Budget(limits.in_flight_bytes)
        self._work = threading.Lock()

    @contextmanager
    def working(self, timeout: float | None = None) -> Iterator[None]:
        """The work lock, waited for at most ``timeout`` (``busy_wait`` by default); Busy past that."""
        wait = self.limits.busy_wait if timeout is None else max(0.0, min(timeout, self.limits.busy_wait))
        if not self._work.acquire(timeout=wait):
            raise Busy("other requests are being stored or answered")
        try:
            yield
        finally:
            self._work.release()
