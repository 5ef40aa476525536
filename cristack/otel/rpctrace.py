"""gRPC spans shaped like Go's otelgrpc stats handlers, for our grpc.aio clients and servers.

Two releases matter, and they differ (both recorded in tests/data/real/):

- the kubelet (Kubernetes v1.36.3) vendors otelgrpc **v0.65.0**: CLIENT spans named after the
  full method without its slash, ``rpc.system.name``/``rpc.method``/``server.address`` (the
  dial target as grpc-go's peer prints it), ``rpc.response.status_code`` spelled as Go's
  ``codes.Code.String()`` ("OK", "NotFound") and ``message`` events (``rpc.message.type``,
  ``id``, ``compressed_size``, ``uncompressed_size``); any code but OK marks the span ERROR with
  the status message. A failed call has only its SENT event.
- CRI-O v1.36.3 vendors otelgrpc **v0.66.0**: SERVER spans with the same attributes, the code
  spelled canonically ("OK", "NOT_FOUND"), no message events (CRI-O does not ask for them),
  ``server.address`` set from the peer only once response headers go out (so a failed call has
  none; a unix-socket client prints as "@"), and ERROR only for server-side codes.

Source: go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc
stats_handler.go, config.go and internal/parse.go as vendored by each release.

We write these thin wrappers instead of using opentelemetry-instrumentation-grpc because the
contrib interceptors name spans with the leading slash and use older attribute names.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from cristack.otel.requestctx import REQUEST_DEADLINE, REQUEST_ID, REQUEST_NAME, new_request_id
from cristack.otel.spans import current_span
from cristack.wire.endpoints import Endpoint
from cristack.wire.serving import HandlerMemo

log = logging.getLogger(__name__)

OTELGRPC_SCOPE = "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
KUBELET_OTELGRPC_VERSION = "0.65.0"  # Kubernetes v1.36.3 vendor/modules.txt


def go_code_name(code: grpc.StatusCode) -> str:
    """A status code as Go's ``codes.Code.String()`` spells it (otelgrpc v0.65.0): "NotFound"."""
    if code == grpc.StatusCode.CANCELLED:
        return "Canceled"
    if code == grpc.StatusCode.OK:
        return "OK"
    return "".join(part.capitalize() for part in code.name.split("_"))


def canonical_code_name(code: grpc.StatusCode) -> str:
    """A status code as otelgrpc v0.66.0's ``canonicalString`` spells it: "NOT_FOUND"."""
    return code.name


def rpc_attributes(full_method: str) -> dict[str, Any]:
    """The attributes otelgrpc sets when the span starts: the method without its slash."""
    return {"rpc.method": full_method.lstrip("/"), "rpc.system.name": "grpc"}


def message_event(span: trace.Span, kind: str, message: Any, seq: int = 1) -> None:
    """otelgrpc's per-message event: SENT or RECEIVED, its sequence number and sizes (we never
    compress, so both sizes are the serialized length)."""
    size = message.ByteSize() if hasattr(message, "ByteSize") else 0
    span.add_event("message", {"rpc.message.type": kind, "rpc.message.id": seq,
                               "rpc.message.compressed_size": size, "rpc.message.uncompressed_size": size})


# otelgrpc's serverStatus: a SERVER span fails only for codes that mean the server is at fault;
# a CLIENT span fails for any code but OK.
SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                           grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


def end_with_code(span: trace.Span, code: grpc.StatusCode, details: str = "", *, server: bool = False) -> None:
    """Sets ``rpc.response.status_code`` (spelled as each side's otelgrpc release does) and the
    span status: ERROR with the gRPC message for a failed CLIENT call, or for a SERVER call only
    when the code is the server's fault; otherwise left unset."""
    span.set_attribute("rpc.response.status_code", canonical_code_name(code) if server else go_code_name(code))
    if code != grpc.StatusCode.OK and (not server or code in SERVER_FAULTS):
        span.set_status(Status(StatusCode.ERROR, details))


def client_server_address(endpoint: Endpoint) -> str:
    """What the kubelet's otelgrpc records as ``server.address`` for its CRI connection: grpc-go
    prints the peer of a ``unix:///path`` target as ``///path`` (recorded: "///tmp/rk/crio.sock";
    the kubelet turns a bare path into ``unix://`` first); a TCP peer prints as host:port, which
    otelgrpc splits into ``server.address`` and ``server.port``."""
    if endpoint.path is not None:
        return f"//{endpoint.path}"
    return endpoint.host


def server_peer_attributes(peer: str | None) -> dict[str, Any]:
    """otelgrpc's serverAddrAttrs applied to the caller's address, as a SERVER span gets it: a
    unix-socket client prints as "@"; a TCP client as host and port."""
    if not peer or peer.startswith("unix"):
        return {"server.address": "@"}
    _family, _, hostport = peer.partition(":")
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return {"server.address": hostport}
    attrs: dict[str, Any] = {"server.address": host.strip("[]")}
    if port.isdigit():
        attrs["server.port"] = int(port)
    return attrs


def inject() -> dict[str, str]:
    """The current trace context (traceparent, tracestate, baggage) as a dict."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


async def traced_unary_call(tracer: trace.Tracer, span_name: str, full_method: str,
                            call: Callable[[tuple[tuple[str, str], ...]], Awaitable[Any]], request: Any,
                            server_address: str = "") -> Any:
    """Runs ``call(metadata)`` inside a CLIENT span shaped like otelgrpc v0.65.0's (the kubelet's),
    with the trace context injected in the gRPC metadata."""
    attributes = rpc_attributes(full_method)
    if server_address:
        attributes["server.address"] = server_address
    with current_span(tracer, span_name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        message_event(span, "SENT", request)
        try:
            response = await call(tuple(inject().items()))
        except grpc.aio.AioRpcError as err:
            end_with_code(span, err.code(), err.details() or "")
            raise
        message_event(span, "RECEIVED", response)
        end_with_code(span, grpc.StatusCode.OK)
        return response


def short(message: Any) -> str:
    """A request or response on one line, the way CRI-O's debug log prints them."""
    body = json_format.MessageToJson(message, indent=None, preserving_proto_field_name=False)
    return f"&{type(message).__name__}{body}"


def _aborted(context: grpc.aio.ServicerContext) -> tuple[grpc.StatusCode, str]:
    """The status a handler aborted with (its code and message, as text)."""
    details = context.details() or ""
    if isinstance(details, bytes):
        details = details.decode(errors="replace")
    return context.code() or grpc.StatusCode.UNKNOWN, details


class ServerTracing(grpc.aio.ServerInterceptor):
    """What CRI-O puts around every unary CRI call:

    - otelgrpc v0.66.0's SERVER span ``runtime.v1.RuntimeService/X`` (no leading slash),
      parented by the caller's context from the gRPC metadata (see the module docstring for
      its attributes and status rules);
    - under it, CRI-O's own interceptor span ``/runtime.v1.RuntimeService/X`` (INTERNAL, scope
      ``crio``), which tags every log line of the request with a fresh uuid (``id``) and the
      method (``name``) and, at debug level, logs ``Request: ...`` and ``Response: ...``.

    Server-streaming calls (GetContainerEvents, StreamContainers, ...) get only the SERVER span: CRI-O's
    StreamInterceptor (internal/log/interceptors/interceptors.go) tags the stream's context with the
    request id and name but opens no span and logs no Request/Response, only ``stream error: ...`` at
    debug level when the handler fails. The SERVER span lasts as long as the stream; it has the peer's
    ``server.address`` once the first response (and with it the headers) went out.

    Give it a tracer from ``provider.get_tracer(OTELGRPC_SCOPE)``: CRI-O's recorded SERVER spans carry no scope
    version (tests/data/real/crio/).

    ``local_address`` is for a later otelgrpc (containerd v2.4 vendors v0.71.0): ``server.address`` is the
    address the server listens on (a unix socket's path), set when the span starts, so a failed call has it
    too. Without an ``internal_tracer`` (no CRI-O interceptor) nothing is logged per request.
    """

    def __init__(self, tracer: trace.Tracer, internal_tracer: trace.Tracer | None = None,
                 local_address: str | None = None) -> None:
        self.tracer = tracer
        self.internal_tracer = internal_tracer
        self.local_address = local_address
        self._wrapped = HandlerMemo(self._wrap)

    async def intercept_service(self, continuation, details):  # noqa: ANN001 - grpc's signature
        handler = await continuation(details)
        if handler is None or (handler.unary_stream is None and handler.unary_unary is None):
            return handler
        return self._wrapped(handler, details.method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_stream is not None:
            return self._stream(handler, method)
        inner = handler.unary_unary

        logs = self.internal_tracer is not None  # CRI-O's interceptor logs each request and response

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._request(method, context) as span, self._internal(method):
                if logs and log.isEnabledFor(logging.DEBUG):
                    log.debug("Request: %s", short(request))
                try:
                    response = await inner(request, context)
                except grpc.aio.AbortError:
                    code, details = _aborted(context)
                    if logs:
                        log.debug("Response error: %s", details)
                    # No response headers went out: otelgrpc v0.66 never saw the peer.
                    end_with_code(span, code, details, server=True)
                    raise
                if logs and log.isEnabledFor(logging.DEBUG):
                    log.debug("Response: %s", short(response))
                if self.local_address is None:
                    span.set_attributes(server_peer_attributes(context.peer()))
                end_with_code(span, grpc.StatusCode.OK, server=True)
                return response

        return grpc.unary_unary_rpc_method_handler(traced, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _stream(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_stream

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self._request(method, context) as span:
                try:
                    result = inner(request, context)
                    if inspect.isawaitable(result):  # a plain handler (an UNIMPLEMENTED stub)
                        await result
                    else:
                        sent = 0
                        async for response in result:
                            if not sent and self.local_address is None:
                                span.set_attributes(server_peer_attributes(context.peer()))
                            sent += 1
                            yield response
                except grpc.aio.AbortError:
                    code, details = _aborted(context)
                    if self.internal_tracer is not None:
                        log.debug("stream error: %s", details)
                    end_with_code(span, code, details, server=True)
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    # The client went away (the kubelet closing its event stream): gRPC's Canceled.
                    end_with_code(span, grpc.StatusCode.CANCELLED, server=True)
                    raise
                end_with_code(span, grpc.StatusCode.OK, server=True)

        return grpc.unary_stream_rpc_method_handler(traced, request_deserializer=handler.request_deserializer,
                                                    response_serializer=handler.response_serializer)

    @contextlib.contextmanager
    def _request(self, method: str, context: grpc.aio.ServicerContext) -> Iterator[trace.Span]:
        """otelgrpc's SERVER span for one call, parented by the caller's context (from the call's metadata),
        with CRI-O's per-request log fields (a fresh request id, the method, the caller's deadline) set for
        everything under it."""
        parent = propagate.extract({k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)})
        attributes = rpc_attributes(method)
        if self.local_address is not None:
            attributes["server.address"] = self.local_address
        with current_span(self.tracer, method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                          attributes=attributes) as span:
            remaining = context.time_remaining()
            tokens = [(REQUEST_ID, REQUEST_ID.set(new_request_id())), (REQUEST_NAME, REQUEST_NAME.set(method)),
                      (REQUEST_DEADLINE, REQUEST_DEADLINE.set(
                          None if remaining is None else time.monotonic() + remaining))]
            try:
                yield span
            finally:
                for var, token in reversed(tokens):
                    with contextlib.suppress(ValueError):  # a stream torn down from another context
                        var.reset(token)

    @contextlib.contextmanager
    def _internal(self, method: str) -> Iterator[None]:
        if self.internal_tracer is None:
            yield
            return
        with current_span(self.internal_tracer, method, kind=SpanKind.INTERNAL):
            yield
