"""containerd's event exchange and the two doors into it (core/events/exchange, plugins/services/events):

- the ttrpc ``containerd.services.events.ttrpc.v1.Events/Forward`` on containerd's ttrpc socket, where shims
  publish their task events (TaskCreate, TaskStart, TaskExit, ...). Served behind otelttrpc's SERVER
  interceptor; the shims send no trace context, so each Forward is a root span, as recorded;
- the gRPC ``containerd.services.events.v1.Events`` on the main socket: Publish and Forward put an envelope
  in, Subscribe streams them out (``ctr events``). Subscribe's filters are not modelled: every event is sent.

The CRI plugin itself does not act on task events (it subscribes to OOM and image topics only; a task's exit
reaches it through its exit monitor's Wait, see fake_containerd.cri.events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from google.protobuf import empty_pb2
from opentelemetry import trace

from cristack.otel.ttrpctrace import server_interceptor
from cristack.wire.errors import InvalidArgument, serve_errors
from cristack.wire.pb.containerd.services.events.v1 import events_pb2_grpc
from cristack.wire.pb.containerd.services.ttrpc.events.v1 import events_pb2 as ttrpc_events
from cristack.wire.pb.containerd.types import event_pb2
from cristack.wire.ttrpc import CallContext, Method, Server

log = logging.getLogger(__name__)

TTRPC_EVENTS = "containerd.services.events.ttrpc.v1.Events"
SUBSCRIBER_QUEUE = 1024  # a slow subscriber loses events beyond this, it never holds the exchange up
MAX_TOPIC = 512


class Exchange:
    """Events in, to every subscriber's bounded queue."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[event_pb2.Envelope]] = set()
        self.received = 0

    def publish(self, envelope: event_pb2.Envelope) -> None:
        if len(envelope.topic) > MAX_TOPIC or not envelope.topic.startswith("/"):
            raise InvalidArgument(f"invalid topic {envelope.topic[:64]!r}: must start with /")
        self.received += 1
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(envelope)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[event_pb2.Envelope]]:
        queue: asyncio.Queue[event_pb2.Envelope] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


def ttrpc_server(exchange: Exchange, provider: trace.TracerProvider) -> Server:
    """containerd's ttrpc server (plugins/server/ttrpc) with the events service shims forward to."""

    async def forward(ctx: CallContext, request: ttrpc_events.ForwardRequest) -> empty_pb2.Empty:
        exchange.publish(request.envelope)
        return empty_pb2.Empty()

    server = Server(interceptor=server_interceptor(provider))
    server.register(TTRPC_EVENTS, {"Forward": Method(ttrpc_events.ForwardRequest, forward)})
    return server


@serve_errors("fake-containerd", events_pb2_grpc.EventsServicer)
class EventsService(events_pb2_grpc.EventsServicer):
    """containerd.services.events.v1.Events on the gRPC socket."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    async def Publish(self, request, context):  # noqa: N802 - the generated name
        envelope = event_pb2.Envelope(namespace=context_namespace(context), topic=request.topic, event=request.event)
        envelope.timestamp.GetCurrentTime()
        self.exchange.publish(envelope)
        return empty_pb2.Empty()

    async def Forward(self, request, context):  # noqa: N802
        self.exchange.publish(request.envelope)
        return empty_pb2.Empty()

    async def Subscribe(self, request, context):  # noqa: N802
        async with self.exchange.subscribe() as queue:
            while True:
                yield await queue.get()


def context_namespace(context) -> str:  # noqa: ANN001 - a grpc.aio context
    """The namespace a containerd client names in its ``containerd-namespace`` metadata."""
    for key, value in context.invocation_metadata() or ():
        if key == "containerd-namespace" and isinstance(value, str):
            return value
    return "default"

