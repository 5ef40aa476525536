"""gRPC spans shaped like Go's otelgrpc, for our grpc.aio clients and servers.

We write these thin wrappers instead of using opentelemetry-instrumentation-grpc because the
contrib interceptors name spans after the full method with its leading slash
("/runtime.v1.RuntimeService/RunPodSandbox"), add no message events, and have no hook to
rename either; the kubelet and CRI-O spans we reproduce are named without the slash and carry
sent/received message events.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from cristack.telemetry import REQUEST_ID, REQUEST_NAME, new_request_id

log = logging.getLogger(__name__)

OTELGRPC_SCOPE = "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"


def rpc_attributes(full_method: str) -> dict[str, Any]:
    service, _, method = full_method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def message_event(span: trace.Span, kind: str, message: Any, seq: int = 1) -> None:
    """otelgrpc's per-message event: SENT or RECEIVED, its sequence number and size."""
    size = message.ByteSize() if hasattr(message, "ByteSize") else 0
    span.add_event("message", {"message.type": kind, "message.id": seq, "message.uncompressed_size": size})


# otelgrpc marks a SERVER span as failed only for codes that mean the server is at fault; a
# CLIENT span fails for any code but OK.
SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                           grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


def end_with_code(span: trace.Span, code: grpc.StatusCode, details: str = "", *, server: bool = False) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK and (not server or code in SERVER_FAULTS):
        span.set_status(Status(StatusCode.ERROR, details or code.name))


def inject() -> dict[str, str]:
    """The current trace context (traceparent, tracestate, baggage) as a dict."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


async def traced_unary_call(tracer: trace.Tracer, span_name: str, full_method: str,
                            call: Callable[[tuple[tuple[str, str], ...]], Awaitable[Any]], request: Any) -> Any:
    """Runs ``call(metadata)`` inside a CLIENT span, with the context injected in gRPC metadata."""
    with tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT, attributes=rpc_attributes(full_method),
                                      record_exception=False, set_status_on_exception=False) as span:
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


class ServerTracing(grpc.aio.ServerInterceptor):
    """What CRI-O puts around every unary CRI call:

    - otelgrpc's SERVER span ``runtime.v1.RuntimeService/X`` (no leading slash), parented by
      the caller's context from the gRPC metadata, with the ``rpc.*`` attributes;
    - under it, CRI-O's own interceptor span ``/runtime.v1.RuntimeService/X`` (INTERNAL, scope
      ``crio``), which tags every log line of the request with a fresh uuid (``id``) and the
      method (``name``) and, at debug level, logs ``Request: ...`` and ``Response: ...``.
    """

    def __init__(self, tracer: trace.Tracer, internal_tracer: trace.Tracer | None = None) -> None:
        self.tracer = tracer
        self.internal_tracer = internal_tracer

    async def intercept_service(self, continuation, details):  # noqa: ANN001 - grpc's signature
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = details.method
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        inner = handler.unary_unary

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            parent = propagate.extract(metadata)
            with self.tracer.start_as_current_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                                                   attributes=rpc_attributes(method), record_exception=False,
                                                   set_status_on_exception=False) as span:
                id_token = REQUEST_ID.set(new_request_id())
                name_token = REQUEST_NAME.set(method)
                try:
                    with self._internal(method):
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("Request: %s", short(request))
                        try:
                            response = await inner(request, context)
                        except grpc.aio.AbortError:
                            code = context.code() or grpc.StatusCode.UNKNOWN
                            details = context.details() or ""
                            if isinstance(details, bytes):
                                details = details.decode(errors="replace")
                            log.debug("Response error: %s", details)
                            end_with_code(span, code, details, server=True)
                            raise
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug("Response: %s", short(response))
                    end_with_code(span, grpc.StatusCode.OK, server=True)
                    return response
                finally:
                    REQUEST_ID.reset(id_token)
                    REQUEST_NAME.reset(name_token)

        return grpc.unary_unary_rpc_method_handler(traced, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    @contextlib.contextmanager
    def _internal(self, method: str) -> Iterator[None]:
        if self.internal_tracer is None:
            yield
            return
        with self.internal_tracer.start_as_current_span(method, kind=SpanKind.INTERNAL, record_exception=False,
                                                        set_status_on_exception=False):
            yield
