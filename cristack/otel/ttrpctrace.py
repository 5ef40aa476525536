"""ttrpc spans shaped like containerd's otelttrpc v0.1.0 interceptors (github.com/containerd/otelttrpc
interceptor.go, metadata_supplier.go, internal/parse.go), for cristack.wire.ttrpc clients and servers.

Recorded (ground-truth spans-lifecycle-shimtracing.jsonl): scope ``github.com/containerd/otelttrpc`` at
version "0.0.0"; span name the full method without its slash (``containerd.task.v3.Task/Create``);
attributes ``rpc.system=ttrpc``, ``rpc.service``, ``rpc.method`` (the short name) and the int
``rpc.ttrpc.status_code``; no events (message events are opt-in and containerd does not opt in).

- CLIENT: the span's context goes into the request's metadata through the text-map propagator (W3C
  trace context and baggage, as containerd installs them), keys lower-cased as ttrpc's ``MD.Set`` does
  (``traceparent``, ``tracestate`` only when there is state, ``baggage`` only when there is any); pairs
  already on the request whose key the propagator did not set are kept, first. The interceptor sees the
  raw Response, not its status (ttrpc checks that after the interceptor): an answered NOT_FOUND leaves
  the CLIENT span at code 0 and UNSET, as recorded, while a transport failure ("ttrpc: closed", a
  deadline) marks it ERROR with code 2 (UNKNOWN: not a status) and the message.
- SERVER: parented by the context extracted from the call's metadata (a root when there is none, as
  containerd's Events/Forward spans are: the shim sends none); a handler's status sets the code, and
  ERROR with the message only for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
  DATA_LOSS (otelttrpc's serverStatus). The span is current while the handler runs.

Both take the tracer provider (and, if wanted, the propagator) they are given: nothing global.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cristack.wire.pb.ttrpc import request_pb2
from cristack.wire.ttrpc import MD, CallContext, ClientInterceptor, Invoker, ServerInterceptor, TtrpcError

OTELTTRPC_SCOPE = "github.com/containerd/otelttrpc"
OTELTTRPC_VERSION = "0.0.0"  # otelttrpc's Version() at v0.1.0

# What containerd sets as the global propagator (pkg/tracing/plugin/otlp.go): trace context, then baggage.
CONTAINERD_PROPAGATOR: TextMapPropagator = CompositePropagator(
    [TraceContextTextMapPropagator(), W3CBaggagePropagator()])

# otelttrpc's serverStatus: the codes that make a SERVER span ERROR.
SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                           grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})
STATUS_CODE = "rpc.ttrpc.status_code"


class _MDAccess(Getter[MD], Setter[MD]):
    """otelttrpc's metadataSupplier: Get returns a key's first value, Set replaces it (lower-cased)."""

    def get(self, carrier: MD, key: str) -> list[str] | None:
        values = carrier.get(key)
        return values[:1] or None

    def keys(self, carrier: MD) -> list[str]:
        return carrier.keys()

    def set(self, carrier: MD, key: str, value: str) -> None:
        carrier.set(key, value)


MD_ACCESS = _MDAccess()


def span_info(full_method: str) -> tuple[str, dict[str, Any]]:
    """otelttrpc's spanInfo: the name without leading slashes; rpc.system, rpc.service, rpc.method."""
    name = full_method.lstrip("/")
    attrs: dict[str, Any] = {"rpc.system": "ttrpc"}
    service, sep, method = name.partition("/")
    if sep:
        if service:
            attrs["rpc.service"] = service
        if method:
            attrs["rpc.method"] = method
    return name, attrs


def inject_metadata(req: request_pb2.Request, ctx: otel_context.Context,
                    propagator: TextMapPropagator = CONTAINERD_PROPAGATOR) -> MD:
    """otelttrpc's inject: the context into the request's metadata (pairs already there whose key the
    propagator did not set stay, first). Returns what the propagator set."""
    injected = MD()
    propagator.inject(injected, context=ctx, setter=MD_ACCESS)
    kept = [kv for kv in req.metadata if kv.key.lower() not in injected]
    del req.metadata[:]
    req.metadata.extend(kept)
    req.metadata.extend(injected.to_pairs())
    return injected


def client_interceptor(provider: trace.TracerProvider,
                       propagator: TextMapPropagator = CONTAINERD_PROPAGATOR) -> ClientInterceptor:
    """The CLIENT interceptor containerd puts on its shim connections (otelttrpc.UnaryClientInterceptor)."""
    tracer = provider.get_tracer(OTELTTRPC_SCOPE, OTELTTRPC_VERSION)

    async def intercept(req: request_pb2.Request, full_method: str, invoke: Invoker) -> request_pb2.Response:
        name, attrs = span_info(full_method)
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs,
                                 record_exception=False, set_status_on_exception=False)
        try:
            inject_metadata(req, trace.set_span_in_context(span), propagator)
            try:
                resp = await invoke(req)
            except TtrpcError as err:
                span.set_status(Status(StatusCode.ERROR, err.message))
                span.set_attribute(STATUS_CODE, err.code_value)
                raise
            except Exception as err:  # not a status: grpc's FromError makes it UNKNOWN with its text
                span.set_status(Status(StatusCode.ERROR, str(err)))
                span.set_attribute(STATUS_CODE, grpc.StatusCode.UNKNOWN.value[0])
                raise
            span.set_attribute(STATUS_CODE, 0)
            return resp
        finally:
            span.end()

    return intercept


def server_interceptor(provider: trace.TracerProvider,
                       propagator: TextMapPropagator = CONTAINERD_PROPAGATOR) -> ServerInterceptor:
    """The SERVER interceptor of containerd's ttrpc server and of a shim built with shim_tracing."""
    tracer = provider.get_tracer(OTELTTRPC_SCOPE, OTELTTRPC_VERSION)

    async def intercept(call: CallContext, invoke: Callable[[], Awaitable[Message]]) -> Message:
        parent = propagator.extract(call.metadata, getter=MD_ACCESS)
        name, attrs = span_info(call.full_method)
        span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attrs,
                                 record_exception=False, set_status_on_exception=False)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            try:
                result = await invoke()
            except TtrpcError as err:
                if err.code in SERVER_FAULTS:
                    span.set_status(Status(StatusCode.ERROR, err.message))
                span.set_attribute(STATUS_CODE, err.code_value)
                raise
            span.set_attribute(STATUS_CODE, 0)
            return result
        finally:
            otel_context.detach(token)
            span.end()

    return intercept


def chain_server(*interceptors: ServerInterceptor) -> ServerInterceptor:
    """Several server interceptors as one, the first outermost (pkg/shim chains otelttrpc first)."""
    async def chained(call: CallContext, invoke: Callable[[], Awaitable[Message]]) -> Message:
        async def step(i: int) -> Message:
            if i == len(interceptors):
                return await invoke()
            return await interceptors[i](call, lambda: step(i + 1))
        return await step(0)

    return chained
