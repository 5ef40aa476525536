"""Events back to containerd (pkg/shim/publisher.go in containerd v2.4.2): each event wrapped in an
Envelope (now, the namespace, the topic, the event as an Any named by its protobuf full name, as
containerd's typeurl names it) and sent with ``containerd.services.events.ttrpc.v1.Events/Forward`` to
the address containerd gave (``TTRPC_ADDRESS``), with the namespace in the ttrpc metadata and a 5 s
timeout. The connection carries no trace context: v2.4's publisher is built without the otelttrpc
client interceptor, which is why containerd's Events/Forward SERVER spans are all roots.

A failed send is retried after 1 s, 2 s, ... up to five times, then dropped with an error line, as
upstream's requeue does; a lost connection is dialled again. Events go out in the order published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from cristack.wire.pb.containerd.services.ttrpc.events.v1 import events_pb2
from cristack.wire.pb.containerd.types import event_pb2
from cristack.wire.ttrpc import Client, Closed, TtrpcError

log = logging.getLogger(__name__)

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
NAMESPACE_HEADER = "containerd-namespace-ttrpc"  # pkg/namespaces/ttrpc.go
FORWARD_TIMEOUT_S = 5.0
MAX_REQUEUE = 5
QUEUE_SIZE = 2048


def to_any(event: Message) -> any_pb2.Any:
    """containerd's typeurl for a protobuf message: the type URL is its full name, nothing before it."""
    return any_pb2.Any(type_url=event.DESCRIPTOR.full_name, value=event.SerializeToString())


def envelope(namespace: str, topic: str, event: Message, now_ns: int | None = None) -> event_pb2.Envelope:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns() if now_ns is None else now_ns)
    return event_pb2.Envelope(timestamp=ts, namespace=namespace, topic=topic, event=to_any(event))


class Publisher:
    """Queues envelopes and forwards them one at a time from its own task (``run``)."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._queue: asyncio.Queue[tuple[event_pb2.Envelope, int]] = asyncio.Queue(QUEUE_SIZE)
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shim-publisher")

    async def publish(self, topic: str, event: Message) -> None:
        """Wraps ``event`` now (its timestamp is when it happened) and queues it (waits while the queue is full)."""
        await self._queue.put((envelope(self.namespace, topic, event), 0))

    async def _run(self) -> None:
        while True:
            env, count = await self._queue.get()
            try:
                await self._forward(env)
                self.sent += 1
            except (TtrpcError, OSError, ValueError) as err:
                log.error("post event: forward %s: %s", env.topic, err)
                self._requeue(env, count + 1)
            finally:
                self._queue.task_done()

    def _requeue(self, env: event_pb2.Envelope, count: int) -> None:
        if count > MAX_REQUEUE:
            log.error("evicting %s from queue because of retry count", env.topic)
            self.dropped += 1
            return

        async def later() -> None:
            await asyncio.sleep(count)
            await self._queue.put((env, count))

        task = asyncio.get_running_loop().create_task(later())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _connect(self) -> Client:
        if self._client is None or self._client.closed:
            self._client = await Client.connect(self.address, timeout=FORWARD_TIMEOUT_S)
        return self._client

    async def _forward(self, env: event_pb2.Envelope) -> None:
        req = events_pb2.ForwardRequest(envelope=env)
        md = {NAMESPACE_HEADER: self.namespace}
        client = await self._connect()
        try:
            await client.call(EVENTS_SERVICE, "Forward", req, empty_pb2.Empty, metadata=md, timeout=FORWARD_TIMEOUT_S)
        except Closed:
            # Reconnect and try once more with a fresh timeout, as upstream's forwardRequest does.
            self._client = None
            client = await self._connect()
            await client.call(EVENTS_SERVICE, "Forward", req, empty_pb2.Empty, metadata=md, timeout=FORWARD_TIMEOUT_S)

    async def drain(self, budget: float) -> None:
        """Waits (at most ``budget`` seconds) until what was published has been sent or given up."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), budget)

    async def close(self) -> None:
        for task in [self._task, *self._retries]:
            if task is not None:
                task.cancel()
        if self._client is not None:
            await self._client.close()
