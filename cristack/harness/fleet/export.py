"""The fleet's OTLP/gRPC export, on the components' rules: nothing waits for the collector.

Requests are raw ``ExportTraceServiceRequest`` bytes (``wire``), batched up to ``MAX_REQUEST_BYTES`` (under a
collector's default 4 MiB receive limit) or one export period, and sent over one gRPC channel with the
components' channel settings and export timeout (``cristack.otel.telemetry``). The queue between the schedule
and the senders is bounded in spans: a request that does not fit is dropped at once. Every span ends up in
exactly one count: exported, or dropped for one reason: ``queue full``, ``rejected`` (the collector's partial
success), the gRPC status of a failed export (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ...), or ``shutdown``
(still queued or in flight when the stop's budget ran out).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from cristack.otel.telemetry import EXPORT_CHANNEL_OPTIONS, EXPORT_TIMEOUT_S, SHUTDOWN_BUDGET_S

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MAX_REQUEST_BYTES = 3 * 2**20
MAX_QUEUE_SPANS = 65_536  # about three seconds of a 1,000-node fleet
SENDERS = 2
QUEUE_FULL, REJECTED, SHUTDOWN = "queue full", "rejected", "shutdown"


@dataclass
class ExportCounts:
    """Spans by what became of them (a snapshot)."""

    exported: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    queued: int = 0

    @property
    def lost(self) -> int:
        return sum(self.dropped.values())


class Batcher:
    """Collects ResourceSpans bytes into requests; hands each full one (or what there is, on ``flush``) on."""

    def __init__(self, send: Callable[[bytes, int], object]) -> None:
        self.send = send
        self.parts: list[bytes] = []
        self.size = 0
        self.spans = 0

    def add(self, resource_spans: bytes, spans: int) -> None:
        if self.size + len(resource_spans) > MAX_REQUEST_BYTES and self.parts:
            self.flush()
        self.parts.append(resource_spans)
        self.size += len(resource_spans)
        self.spans += spans

    def flush(self) -> None:
        if self.parts:
            self.send(b"".join(self.parts), self.spans)
            self.parts, self.size, self.spans = [], 0, 0


class Exporter:
    """``offer`` never blocks; ``SENDERS`` threads send what is queued; ``shutdown`` stops within its budget."""

    def __init__(self, endpoint: str, max_queue_spans: int = MAX_QUEUE_SPANS, timeout: float = EXPORT_TIMEOUT_S,
                 senders: int = SENDERS) -> None:
        self.endpoint = endpoint
        self.max_queue_spans = max_queue_spans
        self.timeout = timeout
        self.channel = grpc.insecure_channel(endpoint, options=[
            *EXPORT_CHANNEL_OPTIONS, ("grpc.max_send_message_length", 2 * MAX_REQUEST_BYTES)])
        self.call = self.channel.unary_unary(EXPORT_METHOD)  # bytes in, bytes out: nothing (de)serialised
        self.queue: deque[tuple[bytes, int]] = deque()
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.counts = ExportCounts()
        self.queued_spans = 0
        self.in_flight = 0  # spans
        self.stopping = False
        self.closed = False  # after shutdown: a late answer is not counted (its spans were, as shutdown)
        self.threads = [threading.Thread(target=self._send_loop, name=f"fleet-export-{i}", daemon=True)
                        for i in range(senders)]
        for t in self.threads:
            t.start()

    def _drop(self, reason: str, spans: int) -> None:
        self.counts.dropped[reason] = self.counts.dropped.get(reason, 0) + spans

    def offer(self, request: bytes, spans: int) -> bool:
        with self.lock:
            if self.stopping or self.queued_spans + spans > self.max_queue_spans:
                self._drop(QUEUE_FULL if not self.stopping else SHUTDOWN, spans)
                return False
            self.queue.append((request, spans))
            self.queued_spans += spans
            self.ready.notify()
            return True

    def _send_loop(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.stopping:
                    self.ready.wait()
                if not self.queue:
                    return
                request, spans = self.queue.popleft()
                self.queued_spans -= spans
                self.in_flight += spans
            outcome = self._send(request, spans)
            with self.lock:
                if self.closed:
                    return
                self.in_flight -= spans
                if outcome is None:
                    self.counts.exported += spans
                else:
                    reason, n = outcome
                    self._drop(reason, n)
                    self.counts.exported += spans - n
                self.counts.requests += 1
                self.ready.notify_all()

    def _send(self, request: bytes, spans: int) -> tuple[str, int] | None:
        """None when every span was taken, else (reason, spans dropped)."""
        try:
            answer = self.call(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            return (code.name if code is not None else "export failed"), spans
        if answer:
            rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
            if rejected:
                return REJECTED, min(int(rejected), spans)
        return None

    def snapshot(self) -> ExportCounts:
        with self.lock:
            return ExportCounts(self.counts.exported, dict(self.counts.dropped), self.counts.requests,
                                self.queued_spans + self.in_flight)

    def shutdown(self, budget: float = SHUTDOWN_BUDGET_S) -> ExportCounts:
        """Sends what is queued for at most ``budget`` seconds; what is left is dropped as ``shutdown``."""
        deadline = time.monotonic() + budget
        with self.lock:
            self.stopping = True
            self.ready.notify_all()
            while (self.queue or self.in_flight) and time.monotonic() < deadline:
                self.ready.wait(max(0.0, deadline - time.monotonic()))
            left = self.queued_spans + self.in_flight
            if left:
                self._drop(SHUTDOWN, left)
            self.queue.clear()
            self.queued_spans = 0
            self.in_flight = 0  # a late answer to what was in flight is not counted again
            final = ExportCounts(self.counts.exported, dict(self.counts.dropped), self.counts.requests, 0)
            self.closed = True
        return final
