"""The embedded sink: an OTLP receiver (gRPC, and HTTP/protobuf or JSON on ``/v1/traces``) with a small
Jaeger-compatible query API and a live view.

It runs on threads (a grpc thread pool and one thread per HTTP connection) so that synchronous callers
(``cristack demo``, pytest) can embed it without owning an event loop. Both receivers hand the request's bytes
to ``intake`` (checked whole, never built as objects) and then to the store, under the limits of
``limits.Gate``; the HTTP side is ``httpserver.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from cristack.harness.sink.hosts import AllowedHosts
from cristack.harness.sink.httpserver import SinkHTTPServer
from cristack.harness.sink.intake import MAX_HTTP_BODY, PROTOBUF, Refused, decode, response
from cristack.harness.sink.limits import Busy, Gate, Limits
from cristack.harness.sink.store import SpanStore

MAX_BODY = MAX_HTTP_BODY  # the largest OTLP/HTTP body, plain or inflated (the Collector's default)
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _export_handler(store: SpanStore, gate: Gate) -> grpc.GenericRpcHandler:
    """TraceService/Export taking the request's bytes as they came (no deserializer): a message that is not an
    ExportTraceServiceRequest is INVALID_ARGUMENT, the code the OTLP specification gives data that cannot be
    decoded (docs/specification.md, "Failures": not retryable), which the Collector's receiver also answers for
    permanent errors (receiver/otlpreceiver/internal/trace/otlp.go); grpc's own deserializer failing would say
    INTERNAL. A busy sink is UNAVAILABLE, the code the specification gives errors worth retrying."""

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        try:  # no longer than the client waits: a request stored after it gave up would be sent again
            with gate.working(context.time_remaining()):
                request = decode(body, PROTOBUF)
                del body
                kept = store.take(request)
        except Refused as err:
            context.abort(err.code, str(err))
        except Busy as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the sink is busy ({err}); retry")
        return response(request.count - kept).SerializeToString()

    return grpc.method_handlers_generic_handler(SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)})


def grpc_options(limits: Limits) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", limits.max_grpc_message),
        # A connection lives at most this long, then gets GOAWAY (clients reconnect on their own) and its calls
        # this much grace: a client that sends its message a byte at a time cannot hold a worker for ever.
        ("grpc.max_connection_age_ms", int(limits.body_timeout * 2000)),
        ("grpc.max_connection_age_grace_ms", int(limits.body_timeout * 1000)),
    ]


@dataclass
class SinkAddresses:
    grpc: str
    http: str

    @property
    def otlp_endpoint(self) -> str:
        return self.grpc

    @property
    def query_url(self) -> str:
        return f"http://{self.http}"


class Sink:
    """Starts on free loopback ports by default: ``Sink().start()``. ``allowed_hosts``: Host names the HTTP
    listener answers to beside IP addresses, localhost and the name it listens on (hosts.py)."""

    def __init__(self, store: SpanStore | None = None, *, jsonl: Path | None = None, limits: Limits | None = None,
                 allowed_hosts: Iterable[str] = ()) -> None:
        self.store = store or SpanStore(jsonl=jsonl)
        self.gate = Gate(limits or Limits())
        self.allowed_hosts = list(allowed_hosts)
        self._grpc: grpc.Server | None = None
        self._http: SinkHTTPServer | None = None
        self.addresses: SinkAddresses | None = None

    def start(self, grpc_address: str = "127.0.0.1:0", http_address: str = "127.0.0.1:0") -> SinkAddresses:
        limits = self.gate.limits
        server = grpc.server(ThreadPoolExecutor(max_workers=limits.grpc_workers, thread_name_prefix="sink-grpc"),
                             handlers=[_export_handler(self.store, self.gate)], options=grpc_options(limits),
                             maximum_concurrent_rpcs=limits.max_concurrent_rpcs)
        try:
            port = server.add_insecure_port(grpc_address)
        except RuntimeError:
            port = 0  # grpc raises where it cannot bind
        if port == 0:
            raise OSError(f"cannot listen on {grpc_address} (address in use?)")
        server.start()
        self._grpc = server
        host, _, http_port = http_address.rpartition(":")
        try:
            self._http = SinkHTTPServer((host, int(http_port)), self.store, self.gate,
                                        AllowedHosts(host, self.allowed_hosts))
        except OSError as err:
            server.stop(0)
            self._grpc = None
            raise OSError(err.errno, f"cannot listen on {http_address} for the query API and OTLP/HTTP: "
                                     f"{err.strerror}") from None
        threading.Thread(target=self._http.serve_forever, name="sink-http-accept", daemon=True).start()
        grpc_host = grpc_address.rpartition(":")[0]
        self.addresses = SinkAddresses(f"{grpc_host}:{port}", f"{host}:{self._http.server_address[1]}")
        return self.addresses

    def stop(self) -> None:
        """Stops both listeners (a second call does nothing)."""
        if self._grpc is not None:
            self._grpc.stop(0.2)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        self.store.close()
